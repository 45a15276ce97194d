"""pgharbor's logic as a plain Python package: no Ansible import, so that the
modules in library/ and the backup timer on the DB host run the same code."""

__version__ = "0.1.0"
