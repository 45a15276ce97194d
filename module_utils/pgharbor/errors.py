"""The one root of pgharbor's errors: every error class of the package
derives from PgharborError, so that a module or a command line catches one
name (and psycopg.Error for the database's own) instead of a list that
falls behind when a room adds a class.

Classes that were ValueError or RuntimeError before still are (a second
base), so code that catches those keeps working."""

from __future__ import annotations


class PgharborError(Exception):
    """A failure pgharbor explains: its message names what to fix."""
