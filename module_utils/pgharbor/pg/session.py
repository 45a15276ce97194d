"""Sessions that read and write values identically on both ends.

A value travels as text or binary between two servers; the text form depends
on session settings (dates, intervals, floats, bytea). Every session that
migrates or compares data gets the same fixed settings, so that no value
changes in transit and hashes computed on either side agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

FIXED_SETTINGS: dict[str, str] = {
    "DateStyle": "ISO, YMD",
    "TimeZone": "UTC",
    "IntervalStyle": "postgres",
    # Shortest exact representation of floats (PostgreSQL >= 12).
    "extra_float_digits": "3",
    "bytea_output": "hex",
    "client_encoding": "UTF8",
    # With row security on, a policy would silently hide rows from the copy;
    # off makes such a query fail instead.
    "row_security": "off",
    "statement_timeout": "0",
    "lock_timeout": "0",
    # The snapshot holder sits idle in its transaction for the whole copy.
    "idle_in_transaction_session_timeout": "0",
}


def connect(conninfo: str, application_name: str = "pgharbor") -> psycopg.Connection:
    """A connection with the fixed settings applied. It stays in autocommit
    mode: callers open their transactions explicitly (BEGIN with the isolation
    they need), so what runs in which transaction is visible in the code."""
    conn = psycopg.connect(conninfo, application_name=application_name, autocommit=True)
    for name, value in FIXED_SETTINGS.items():
        conn.execute(sql.SQL("SELECT set_config({}, {}, false)").format(sql.Literal(name), sql.Literal(value)))
    return conn


@contextmanager
def exported_snapshot(conninfo: str) -> Iterator[tuple[psycopg.Connection, str]]:
    """Hold a REPEATABLE READ transaction open and export its snapshot, so
    that other sessions (workers, pg_dump) see the database as this one does.
    The snapshot is valid as long as the context is open."""
    conn = connect(conninfo, "pgharbor snapshot")
    try:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        yield conn, snapshot
    finally:
        conn.close()


def join_snapshot(conn: psycopg.Connection, snapshot: str) -> None:
    """Start a read-only transaction on conn that sees the exported snapshot."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
