"""Verifying a backup, in levels; each level includes the ones below.

1. checksum: the stored file matches its manifest (size and SHA-256);
2. readable: it decrypts, decompresses and pg_restore reads the whole dump;
3. restore: it restores into a scratch database, whose per-table row counts
   (and content hashes where the manifest has them) equal the manifest's,
   and pg_amcheck finds the restored heap and indexes sound; the scratch
   database is dropped afterwards.

Levels 2 and 3 need the private key, which the caller brings (from the vault)
for the length of the check.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field

import psycopg

from ..common.settings import ConfigError
from ..errors import PgharborError
from ..pg.amcheck import AmcheckError, amcheck
from ..pg.catalog import large_object_count
from ..pg.databases import create_database, database_conninfo, drop_database
from ..pg.session import connect
from .keys import SecretKeyring, secret_keyring
from .manifest import TableEntry, now_text
from .restore import (
    RestoreError,
    check_checksum,
    check_readable,
    restore_into,
)
from .store import Backup, reading
from .take import describe_tables

LEVELS = {"checksum": 1, "readable": 2, "restore": 3}


class VerifyError(PgharborError, RuntimeError):
    def __init__(self, message: str, verification: Verification):
        super().__init__(message)
        self.verification = verification


@dataclass
class Verification:
    backup: str
    level: str
    started: str
    passed: list[str] = field(default_factory=list)
    failed: str = ""
    seconds: float = 0.0
    # Level 3: how long the restore took (RTO evidence) and what was checked.
    restore_seconds: float | None = None
    tables: int = 0
    rows: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def table_differences(expected: dict[str, TableEntry], found: dict[str, TableEntry]) -> list[str]:
    out = []
    for name in sorted(expected.keys() - found.keys()):
        out.append(f"table {name} is in the manifest but not in the restored database")
    for name in sorted(found.keys() - expected.keys()):
        out.append(f"table {name} was restored but is not in the manifest")
    for name in sorted(expected.keys() & found.keys()):
        want, got = expected[name], found[name]
        if want.rows != got.rows:
            out.append(f"table {name}: {got.rows} rows restored, the manifest says {want.rows}")
        elif want.hash and want.hash != got.hash:
            out.append(f"table {name}: content hash differs from the manifest's")
    return out


def verify(backup: Backup, level: str, *, private_key: str | None = None, passphrase: str | None = None,
           server: str | None = None) -> Verification:
    """Check backup up to level; raise VerifyError (carrying the record)
    at the first failed check."""
    if level not in LEVELS:
        raise ConfigError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    if LEVELS[level] >= 2 and not private_key:
        raise ConfigError(f"level {level} decrypts the backup: give the private key (pg_backup_private_key)")
    if LEVELS[level] >= 3 and not server:
        raise ConfigError("level restore needs a server to restore into (verify_server: a conninfo of a role "
                         "that may create databases)")
    record = Verification(backup.id, level, now_text())
    begin = time.monotonic()
    try:
        with reading(backup):
            check_checksum(backup)
            record.passed.append("checksum")
            if LEVELS[level] >= 2:
                assert private_key is not None
                with secret_keyring(private_key, passphrase) as keyring:
                    check_readable(backup, keyring)
                    record.passed.append("readable")
                    if LEVELS[level] >= 3:
                        assert server is not None
                        _restore_check(backup, keyring, server, record)
                        record.passed.append("restore")
    except (RestoreError, AmcheckError, psycopg.Error, OSError) as exc:
        record.failed = str(exc).strip()
    record.seconds = round(time.monotonic() - begin, 3)
    if record.failed:
        raise VerifyError(f"backup {backup.id} failed verification at level "
                          f"{['checksum', 'readable', 'restore'][len(record.passed)]}: {record.failed}", record)
    return record


def _restore_check(backup: Backup, keyring: SecretKeyring, server: str, record: Verification) -> None:
    scratch = f"pgharbor_verify_{secrets.token_hex(4)}"
    create_database(server, scratch)
    try:
        target = database_conninfo(server, scratch)
        begin = time.monotonic()
        restore_into(backup, keyring, target, keep_owners=False)
        record.restore_seconds = round(time.monotonic() - begin, 3)
        expected = backup.manifest.tables
        with connect(target, "pgharbor verify") as conn:
            found = describe_tables(conn, hashes=any(t.hash for t in expected.values()))
            objects = large_object_count(conn)
        record.tables, record.rows = len(found), sum(t.rows for t in found.values())
        record.differences = table_differences(expected, found)
        if objects != backup.manifest.large_objects:
            record.differences.append(f"{objects} large objects restored, the manifest says "
                                      f"{backup.manifest.large_objects}")
        if record.differences:
            raise RestoreError("the restored copy differs from the manifest: " + "; ".join(record.differences))
        amcheck(target)
    finally:
        drop_database(server, scratch)
