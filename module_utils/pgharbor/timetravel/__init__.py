"""The time-travel layer: continuous WAL archiving and base backups by pgBackRest (Debian's), and
what pgharbor adds around it: the restorable window per repository, verify's result read
properly, and a past copy restored beside the live cluster to look at, take rows from, or swap in."""
