"""Freeze the source database for the cutover, and lift the freeze exactly.

Frozen means: the database default ``default_transaction_read_only = on``,
so every new session of every role is read-only (writes and nextval fail),
and the sessions that were already open are drained (given time to end,
then terminated), since they keep the setting they started with. The
database's previous setting is recorded in a state file before anything
changes; thawing puts back exactly that (the old value, or no setting).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from ..common.atomicfile import replace_file
from ..errors import PgharborError
from ..pg.session import connect

SETTING = "default_transaction_read_only"


class FreezeError(PgharborError, RuntimeError):
    pass


@dataclass
class FreezeState:
    database: str
    # The database-level value before the freeze; None: it had none.
    previous: str | None
    frozen_at: str


@dataclass
class FreezeResult:
    changed: bool
    database: str
    previous: str | None = None
    waited_seconds: float = 0.0
    terminated: int = 0


def _database_setting(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        """SELECT cfg FROM pg_db_role_setting s, unnest(s.setconfig) cfg
           WHERE s.setrole = 0 AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
             AND cfg LIKE %s""", (SETTING + "=%",)).fetchone()
    return row[0].split("=", 1)[1] if row else None


def _overriding_roles(conn: psycopg.Connection) -> list[str]:
    """Role settings win over database settings: a role with the setting off
    would keep writing. Returns the statements that remove those settings."""
    rows = conn.execute(
        """SELECT r.rolname, s.setdatabase = 0 FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole,
                  unnest(s.setconfig) cfg
           WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
             AND lower(cfg) = ANY(%s)""", ([f"{SETTING}={v}" for v in ("off", "false", "0", "no")],)).fetchall()
    database = sql.Identifier(conn.info.dbname)
    return [(sql.SQL("ALTER ROLE {} RESET {}") if everywhere else sql.SQL("ALTER ROLE {} IN DATABASE {} RESET {}"))
            .format(*([sql.Identifier(role)] + ([] if everywhere else [database]) + [sql.Identifier(SETTING)]))
            .as_string(conn) for role, everywhere in rows]


def _other_sessions(conn: psycopg.Connection) -> list[int]:
    return [r[0] for r in conn.execute(
        """SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND backend_type = 'client backend'""")]


def _write_state(path: Path, state: FreezeState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    replace_file(path, json.dumps(asdict(state), indent=2) + "\n")


def read_state(path: str) -> FreezeState | None:
    file = Path(path)
    return FreezeState(**json.loads(file.read_text())) if file.exists() else None


def _set(conn: psycopg.Connection, database: str, value: str | None) -> None:
    if value is None:
        conn.execute(sql.SQL("ALTER DATABASE {} RESET {}").format(sql.Identifier(database), sql.Identifier(SETTING)))
    else:
        conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
            sql.Identifier(database), sql.Identifier(SETTING), sql.Literal(value)))


def _session(conninfo: str) -> psycopg.Connection:
    """Our own session writes even into a frozen database."""
    conn = connect(conninfo, "pgharbor freeze")
    conn.execute(sql.SQL("SET {} = off").format(sql.Identifier(SETTING)))
    return conn


def is_frozen(conninfo: str) -> bool:
    with _session(conninfo) as conn:
        return _database_setting(conn) == "on"


def freeze(conninfo: str, state_path: str, *, drain_seconds: float = 30, check_mode: bool = False) -> FreezeResult:
    """Make the database read-only for every role and drain its sessions.
    Freezing a database this state file already froze changes nothing and
    keeps the first recorded state."""
    with _session(conninfo) as conn:
        database = conn.info.dbname
        overriding = _overriding_roles(conn)
        if overriding:
            raise FreezeError(f"roles set {SETTING} off for themselves and would keep writing after the freeze: "
                              f"run {'; '.join(overriding)}")
        recorded = read_state(state_path)
        current = _database_setting(conn)
        if recorded is not None and recorded.database != database:
            raise FreezeError(f"state file {state_path} records a freeze of database {recorded.database}, not "
                              f"{database}: thaw that one first or use another freeze_state_file")
        if recorded is not None and current == "on":
            return FreezeResult(False, database, recorded.previous)
        previous = recorded.previous if recorded is not None else current
        if check_mode:
            return FreezeResult(True, database, previous)
        if recorded is None:
            _write_state(Path(state_path), FreezeState(database, previous, datetime.now(timezone.utc).isoformat()))
        _set(conn, database, "on")
        started = time.monotonic()
        while _other_sessions(conn) and time.monotonic() - started < drain_seconds:
            time.sleep(0.2)
        waited = time.monotonic() - started
        terminated = 0
        for pid in _other_sessions(conn):
            terminated += bool(conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0])
        return FreezeResult(True, database, previous, round(waited, 1), terminated)


def thaw(conninfo: str, state_path: str, *, check_mode: bool = False) -> FreezeResult:
    """Put back the recorded setting and forget the freeze. Without a state
    file there is nothing of ours to lift: nothing changes."""
    recorded = read_state(state_path)
    with _session(conninfo) as conn:
        database = conn.info.dbname
        if recorded is None:
            return FreezeResult(False, database)
        if recorded.database != database:
            raise FreezeError(f"state file {state_path} records a freeze of database {recorded.database}, not "
                              f"{database}: connect to {recorded.database} to thaw it")
        if not check_mode:
            _set(conn, database, recorded.previous)
            Path(state_path).unlink()
        return FreezeResult(True, database, recorded.previous)
