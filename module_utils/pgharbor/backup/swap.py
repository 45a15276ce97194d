"""Restoring a backup beside the live database, to be swapped in.

restore_new() restores into a new database next to the live one (the
application keeps working) and reports what arrived against the manifest;
pg.swap puts it in the live one's place, and undoes that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from ..pg.databases import create_database, database_conninfo, drop_database
from ..pg.session import connect
from ..pg.swap import COMPLETE, PARTIAL, comment, owner, set_comment
from .keys import SecretKeyring
from .restore import RestoreError, check_checksum, restore_into
from .store import Backup, reading
from .take import describe_tables
from .verify import table_differences


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
        existing = comment(admin, name)
        if existing is not None and existing != COMPLETE.format(id=backup.id):
            raise RestoreError(f"database {name} exists and is not a complete restore of {backup.id}: drop it, or "
                               "choose another restore_name")
        changed = existing is None
        begin = time.monotonic()
        if changed:
            check_checksum(backup)
            create_database(admin_conninfo, name, owner(admin, live))
            set_comment(admin, name, PARTIAL.format(id=backup.id))
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
            set_comment(admin, name, COMPLETE.format(id=backup.id))
    return changed, preview


