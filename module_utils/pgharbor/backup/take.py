"""Taking a backup: pg_dump | zstd | gpg into the tier-1 directory.

Everything that can be checked is checked before the dump starts (keys,
tools, the database, free space), so that a backup fails early and says why.
pg_dump reads an exported snapshot held by this process, and the manifest's
row counts are taken in that same snapshot while the dump runs: the manifest
describes exactly that dump. No plaintext reaches the disk: pg_dump writes
into zstd, zstd into gpg, and only gpg's output is stored, hashed as it is
written.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

import psycopg
from psycopg import sql

from .. import __version__
from ..common.pipeline import Pipeline, PipelineError, Stage
from ..errors import PgharborError
from ..pg import catalog
from ..pg.conninfo import libpq_env
from ..pg.rows import chunk_hashes, primary_key
from ..pg.sections import SchemaError, pg_bindir
from ..pg.session import exported_snapshot
from .keys import KeyProblem, check_recipients, encrypt_argv
from .manifest import Manifest, TableEntry, backup_id, now_text, utc_text
from .store import Store, StoreError

Progress = Callable[[int], None]
T = TypeVar("T")
HASH_CHUNK_ROWS = 10000


class BackupError(PgharborError, RuntimeError):
    pass


@dataclass
class BackupSettings:
    conninfo: str
    directory: str
    keyring: str
    recipients: list[str]
    compression_level: int = 3
    # zstd worker threads; 1 leaves the other cores to the database.
    compression_threads: int = 1
    table_hashes: bool = False
    # Free space to leave on the disk beyond the backup's own estimate.
    reserve_bytes: int = 0
    server_name: str = ""


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BackupError(f"{argv[0]} is not usable ({exc}): install it (the base role does)") from exc
    return out.splitlines()[0].strip() if out else "?"


def describe_tables(conn: psycopg.Connection, hashes: bool) -> dict[str, TableEntry]:
    """Per table: the row count and, when asked, a content hash, as conn sees
    them. The backup computes these in its snapshot; the restore check
    computes them again on the restored copy."""
    entries = {}
    for table in catalog.tables(conn):
        rows = conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(table.ident)).fetchone()[0]
        digest = None
        if hashes:
            h = hashlib.sha256()
            for count, chunk in chunk_hashes(conn, table, primary_key(conn, table), HASH_CHUNK_ROWS):
                h.update(f"{count}:{chunk}\n".encode())
            digest = h.hexdigest()
        entries[table.label] = TableEntry(int(rows), digest)
    return entries


def _check_space(store: Store, database: str, database_bytes: int, reserve: int) -> None:
    """A backup needs about as much as the last one of the same database,
    with a margin; the first one is estimated from the database's size."""
    previous = store.backups(database)
    needed = int(previous[-1].manifest.size * 1.25) if previous else database_bytes
    free = store.free_bytes()
    if free < needed + reserve:
        mib = 1 << 20
        basis = "the last backup's size + 25%" if previous else "the database's size"
        raise BackupError(f"not enough free space in {store.root}: {free // mib} MiB free, a backup needs about "
                          f"{needed // mib} MiB ({basis}) + {reserve // mib} MiB reserve "
                          "(pg_backup_reserve_mb): free space, keep fewer backups (pg_backup_retention) "
                          "or move pg_backup_directory to a larger disk")


def take_backup(settings: BackupSettings, progress: Progress | None = None) -> Manifest:
    def locked(store: Store) -> Manifest:
        with store.lock():
            return take(settings, store, progress)
    return guarded(settings, locked)


def check_backup(settings: BackupSettings) -> dict:
    """Everything take_backup checks before it dumps, without dumping (check
    mode): the directory, the keys, the tools, the database, the space. It
    takes no lock and removes nothing, so it neither changes the directory
    nor fails because the timer's backup is running."""
    def checks(store: Store) -> dict:
        with ExitStack() as stack:
            facts, _ = _prepare(settings, store, stack)
        return {k: v for k, v in facts.items() if k not in ("snapshot", "pg_dump")}
    return guarded(settings, checks)


def guarded(settings: BackupSettings, work: Callable[[Store], T]) -> T:
    """Run work on the checked directory; every failure becomes a BackupError."""
    store = Store(settings.directory)
    try:
        store.check()
        return work(store)
    except (KeyProblem, StoreError, SchemaError, PipelineError) as exc:
        raise BackupError(str(exc)) from exc
    except psycopg.Error as exc:
        raise BackupError(f"database error during the backup: {str(exc).strip()}") from exc


def _prepare(settings: BackupSettings, store: Store, stack: ExitStack) -> tuple[dict, psycopg.Connection]:
    """The checks before a dump; the snapshot they open stays open in stack."""
    keys = check_recipients(settings.keyring, settings.recipients)
    pg_dump = str(pg_bindir() / "pg_dump")
    tools = {"pgharbor": __version__, "pg_dump": tool_version([pg_dump, "--version"]),
             "zstd": tool_version(["zstd", "--version"]), "gpg": tool_version(["gpg", "--version"])}
    try:
        conn, snapshot = stack.enter_context(exported_snapshot(settings.conninfo))
    except psycopg.OperationalError as exc:
        raise BackupError(f"cannot connect to the database (pg_backup_db): {str(exc).strip()}") from exc
    database, version, size = conn.execute(
        "SELECT current_database(), current_setting('server_version'), "
        "pg_database_size(current_database())").fetchone()
    _check_large_objects(conn)
    _check_space(store, database, size, settings.reserve_bytes)
    return {"database": database, "server_version": version, "database_bytes": size,
            "free_bytes": store.free_bytes(), "recipients": [k.fingerprint for k in keys],
            "pg_dump": pg_dump, "tools": tools, "snapshot": snapshot}, conn


def _check_large_objects(conn: psycopg.Connection) -> None:
    count, unreadable = catalog.unreadable_large_objects(conn)
    if unreadable:
        raise BackupError(
            f"{conn.info.user} may not read {unreadable} of {count} large objects, so pg_dump would fail: grant it "
            "SELECT on them (GRANT SELECT ON LARGE OBJECT <oid> TO " f"{conn.info.user}) or set pg_backup_db "
            "to their owner")


def take(settings: BackupSettings, store: Store, progress: Progress | None) -> Manifest:
    """A backup into store, whose lock the caller holds (take_backup, or the
    timer's cycle, which ships and prunes under the same lock); what an
    interrupted run left behind is removed first."""
    for path in store.debris():
        path.unlink()
    with ExitStack() as stack:
        facts, conn = _prepare(settings, store, stack)
        started = datetime.now(timezone.utc)
        while store.manifest_path(backup_id(facts["database"], started)).exists():
            time.sleep(1)  # ids have a resolution of one second
            started = datetime.now(timezone.utc)
        bid = backup_id(facts["database"], started)
        dsn, env = libpq_env(settings.conninfo)
        pipeline = Pipeline([
            Stage("pg_dump", [facts["pg_dump"], "--format=custom", "--compress=0", f"--snapshot={facts['snapshot']}",
                              f"--dbname={dsn}"], env=env),
            Stage("zstd", ["zstd", "-q", "-c", f"-{settings.compression_level}",
                           f"-T{settings.compression_threads}"]),
            Stage("gpg", encrypt_argv(settings.keyring, facts["recipients"])),
        ])
        writer = store.writer(bid)
        try:
            with ThreadPoolExecutor(1) as pool:
                described = pool.submit(_describe, conn, settings.table_hashes)
                pipeline.run(sink=_with_progress(writer, progress))
                tables, large_objects = described.result()
            writer.publish()
        except BaseException:
            writer.discard()
            raise
    manifest = Manifest(
        id=bid, database=facts["database"], server=settings.server_name or socket.gethostname(),
        server_version=facts["server_version"], started=utc_text(started),
        finished=now_text(), snapshot=facts["snapshot"], tools=facts["tools"],
        compression={"tool": "zstd", "level": settings.compression_level},
        encryption={"tool": "gpg", "cipher": "AES256", "recipients": facts["recipients"]},
        artefact=writer.final.name, size=writer.size, sha256=writer.sha256.hexdigest(),
        tables=tables, large_objects=large_objects)
    store.publish_manifest(manifest)
    return manifest


def _describe(conn: psycopg.Connection, hashes: bool) -> tuple[dict[str, TableEntry], int]:
    return describe_tables(conn, hashes), catalog.large_object_count(conn)


def _with_progress(writer: Callable[[bytes], None], progress: Progress | None) -> Callable[[bytes], None]:
    if progress is None:
        return writer
    total = 0

    def sink(chunk: bytes) -> None:
        nonlocal total
        writer(chunk)
        total += len(chunk)
        progress(total)
    return sink
