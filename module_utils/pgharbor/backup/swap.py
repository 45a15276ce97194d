"""Restoring a backup beside the live database, and swapping it in.

restore_new() restores into a new database next to the live one (the
application keeps working) and reports what arrived against the manifest.
swap() puts it in the live one's place: the application is disconnected only
for two renames, and the old database is kept under a new name; undo() puts
the old one back. What a swap did is recorded in a state file first, so that
undo works from any later run and running it twice is harmless.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from ..common.atomicfile import replace_file
from ..pg.session import connect
from .keys import SecretKeyring
from .manifest import now_text
from .restore import RestoreError, check_checksum, create_database, database_conninfo, drop_database, restore_into
from .store import Backup, reading
from .take import describe_tables
from .verify import table_differences

PARTIAL = "pgharbor: PARTIAL restore of {id}"
COMPLETE = "pgharbor: restore of {id} complete"


@dataclass
class Preview:
    database: str
    backup: str
    tables: dict[str, int]
    rows: int
    differences: list[str]
    seconds: float

    def as_dict(self) -> dict:
        return {"database": self.database, "backup": self.backup, "tables": self.tables, "rows": self.rows,
                "differences": self.differences, "seconds": self.seconds}


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _comment(admin: psycopg.Connection, name: str) -> str | None:
    row = admin.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                        (name,)).fetchone()
    return None if row is None else (row[0] or "")


def _owner(admin: psycopg.Connection, name: str) -> str | None:
    row = admin.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row[0] if row else None


def _set_comment(admin: psycopg.Connection, name: str, text: str) -> None:
    admin.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(text)))


def restore_new(backup: Backup, keyring: SecretKeyring, admin_conninfo: str, live: str,
                name: str) -> tuple[bool, Preview]:
    """Restore backup into a new database `name` owned like `live`. Returns
    (changed, preview); a complete restore of the same backup under that name
    is kept as it is."""
    with reading(backup):
        return _restore_new(backup, keyring, admin_conninfo, live, name)


def _restore_new(backup: Backup, keyring: SecretKeyring, admin_conninfo: str, live: str, name: str
                 ) -> tuple[bool, Preview]:
    with psycopg.connect(admin_conninfo, autocommit=True) as admin:
        existing = _comment(admin, name)
        if existing is not None and existing != COMPLETE.format(id=backup.id):
            raise RestoreError(f"database {name} exists and is not a complete restore of {backup.id}: drop it, or "
                               "choose another restore_name")
        changed = existing is None
        begin = time.monotonic()
        if changed:
            check_checksum(backup)
            create_database(admin_conninfo, name, _owner(admin, live))
            _set_comment(admin, name, PARTIAL.format(id=backup.id))
    try:
        if changed:
            restore_into(backup, keyring, database_conninfo(admin_conninfo, name), keep_owners=True)
        with connect(database_conninfo(admin_conninfo, name), "pgharbor restore") as conn:
            found = describe_tables(conn, hashes=any(t.hash for t in backup.manifest.tables.values()))
    except BaseException:
        if changed:
            drop_database(admin_conninfo, name)
        raise
    preview = Preview(name, backup.id, {k: v.rows for k, v in found.items()}, sum(v.rows for v in found.values()),
                      table_differences(backup.manifest.tables, found), round(time.monotonic() - begin, 3))
    if preview.differences:
        drop_database(admin_conninfo, name)
        raise RestoreError(f"the restored copy of {backup.id} differs from its manifest (dropped): "
                           + "; ".join(preview.differences))
    if changed:
        with psycopg.connect(admin_conninfo, autocommit=True) as admin:
            _set_comment(admin, name, COMPLETE.format(id=backup.id))
    return changed, preview


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


def swap(admin_conninfo: str, live: str, restored: str, state_file: str | Path) -> dict:
    """Put the restored database in place of live; keep live renamed."""
    state_path = Path(state_file)
    with psycopg.connect(admin_conninfo, autocommit=True) as admin:
        if state_path.exists():
            state = json.loads(state_path.read_text())
            if state["live"] == live and state["restored"] == restored and _comment(admin, restored) is None:
                return {"changed": False, **state}
            raise RestoreError(f"a swap is already recorded in {state_path} ({state['previous']} kept): undo it first "
                               "(restore.yml with undo) or remove the file if that database is no longer needed")
        mark = _comment(admin, restored)
        if mark is None or not mark.startswith("pgharbor: restore of ") or not mark.endswith(" complete"):
            raise RestoreError(f"database {restored} is not a complete pgharbor restore: run the restore first")
        previous = f"{live}_before_restore_{_stamp()}"
        state = {"live": live, "previous": previous, "restored": restored,
                 "backup": mark.removeprefix("pgharbor: restore of ").removesuffix(" complete"),
                 "swapped": now_text()}
        _copy_database_settings(admin, live, restored)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(state_path, json.dumps(state, indent=2))
        begin = time.monotonic()
        _disconnect_and_rename(admin, [(live, previous), (restored, live)])
        _set_comment(admin, live, f"pgharbor: restored from {state['backup']} on {state['swapped']}")
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
        if _comment(admin, state["previous"]) is None:
            raise RestoreError(f"database {state['previous']} (the one the swap replaced) is gone; "
                               f"nothing to put back; remove {state_path} once you have checked")
        begin = time.monotonic()
        _disconnect_and_rename(admin, [(state["live"], undone), (state["previous"], state["live"])])
    state_path.unlink()
    return {"changed": True, "kept": undone, "disconnected_seconds": round(time.monotonic() - begin, 3), **state}
