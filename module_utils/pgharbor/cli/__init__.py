"""The command lines on the hosts (pgharbor-backup, pgharbor-backup-server) and the timer's cycle
they run."""
