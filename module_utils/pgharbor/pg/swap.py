"""Swapping a database in for the live one, and undoing it, on one server.

A restore (a logical backup's, or time travel's past database) is made
beside the live database under a new name and marked complete in its
comment. swap() puts it in the live one's place: the application is
disconnected only for two renames, and the old database is kept under a new
name; undo() puts the old one back. What a swap did is recorded in a state
file first, so that undo works from any later run and running it twice is
harmless."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from ..common.atomicfile import replace_file
from ..errors import PgharborError

# The comment a restore carries while it is made, and once it is whole: only a complete one swaps in.
PARTIAL = "pgharbor: PARTIAL restore of {id}"
COMPLETE = "pgharbor: restore of {id} complete"
COMPLETE_PREFIX, COMPLETE_SUFFIX = COMPLETE.split("{id}")


class SwapError(PgharborError, RuntimeError):
    pass


def _now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def comment(admin: psycopg.Connection, name: str) -> str | None:
    row = admin.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                        (name,)).fetchone()
    return None if row is None else (row[0] or "")


def owner(admin: psycopg.Connection, name: str) -> str | None:
    row = admin.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row[0] if row else None


def set_comment(admin: psycopg.Connection, name: str, text: str) -> None:
    admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(text)))


def _copy_database_settings(admin: psycopg.Connection, source: str, target: str) -> None:
    """Database-level grants and settings are not in a dump restored without
    --create: the restored database takes the live one's."""
    target_id = sql.Identifier(target)
    admin.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(target_id))
    grants = admin.execute(
        """SELECT CASE WHEN a.grantee = 0 THEN NULL ELSE pg_get_userbyid(a.grantee) END, a.privilege_type
           FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
           WHERE d.datname = %s""", (source,)).fetchall()
    for grantee, privilege in grants:
        admin.execute(sql.SQL("GRANT {} ON DATABASE {} TO {}").format(
            sql.SQL(privilege), target_id, sql.SQL("PUBLIC") if grantee is None else sql.Identifier(grantee)))
    settings = admin.execute(
        """SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_get_userbyid(s.setrole) END, unnest(s.setconfig)
           FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = %s""",
        (source,)).fetchall()
    for role, setting in settings:
        key, _, value = setting.partition("=")
        scope = sql.SQL("DATABASE {}").format(target_id) if role is None else \
            sql.SQL("ROLE {} IN DATABASE {}").format(sql.Identifier(role), target_id)
        admin.execute(sql.SQL("ALTER {} SET {} = {}").format(scope, sql.Identifier(key), sql.Literal(value)))


def _disconnect_and_rename(admin: psycopg.Connection, renames: list[tuple[str, str]], attempts: int = 5) -> None:
    """Close the databases to new sessions, end the open ones, rename. A
    session that slipped in between makes RENAME fail; try again."""
    names = [old for old, _ in renames]
    for name in names:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(name)))
    for attempt in range(attempts):
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ANY(%s) "
                      "AND pid <> pg_backend_pid()", (names,))
        try:
            with admin.transaction():
                for old, new in renames:
                    admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(old),
                                                                                    sql.Identifier(new)))
            break
        except psycopg.errors.ObjectInUse:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
    for _, new in renames:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(new)))


def swap(admin_conninfo: str, live: str, restored: str, state_file: str | Path,
         undo_with: str = "restore.yml with -e restore_undo=true") -> dict:
    """Put the restored database in place of live; keep live renamed. undo_with: how the
    operator undoes a swap, named when another is asked for first."""
    state_path = Path(state_file)
    with psycopg.connect(admin_conninfo, autocommit=True) as admin:
        if state_path.exists():
            state = json.loads(state_path.read_text())
            if state["live"] == live and state["restored"] == restored and comment(admin, restored) is None:
                return {"changed": False, **state}
            raise SwapError(f"a swap is already recorded in {state_path} ({state['previous']} kept): undo it first "
                            f"({undo_with}) or remove the file if that database is no longer needed")
        mark = comment(admin, restored)
        if mark is None or not mark.startswith(COMPLETE_PREFIX) or not mark.endswith(COMPLETE_SUFFIX):
            raise SwapError(f"database {restored} is not a complete pgharbor restore: run the restore first")
        if comment(admin, live) is None:
            raise SwapError(f"database {live} does not exist, so there is nothing to swap with: to bring it back, "
                            f"rename the restore (ALTER DATABASE {restored} RENAME TO {live}), then run site.yml for "
                            "its database-level grants")
        previous = f"{live}_before_restore_{_stamp()}"
        state = {"live": live, "previous": previous, "restored": restored,
                 "backup": mark.removeprefix(COMPLETE_PREFIX).removesuffix(COMPLETE_SUFFIX),
                 "swapped": _now_text()}
        _copy_database_settings(admin, live, restored)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(state_path, json.dumps(state, indent=2))
        begin = time.monotonic()
        _disconnect_and_rename(admin, [(live, previous), (restored, live)])
        set_comment(admin, live, f"pgharbor: restored from {state['backup']} on {state['swapped']}")
        return {"changed": True, "disconnected_seconds": round(time.monotonic() - begin, 3), **state}


def undo(admin_conninfo: str, state_file: str | Path) -> dict:
    """Put back the database a swap replaced; the restored one is kept
    renamed. Without a recorded swap there is nothing to undo."""
    state_path = Path(state_file)
    if not state_path.exists():
        return {"changed": False}
    state = json.loads(state_path.read_text())
    undone = f"{state['live']}_undone_{_stamp()}"
    with psycopg.connect(admin_conninfo, autocommit=True) as admin:
        if comment(admin, state["previous"]) is None:
            raise SwapError(f"database {state['previous']} (the one the swap replaced) is gone; "
                            f"nothing to put back; remove {state_path} once you have checked")
        begin = time.monotonic()
        _disconnect_and_rename(admin, [(state["live"], undone), (state["previous"], state["live"])])
    state_path.unlink()
    return {"changed": True, "kept": undone, "disconnected_seconds": round(time.monotonic() - begin, 3), **state}
