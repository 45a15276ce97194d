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
import json
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import sql

from . import __version__, catalog
from .config import ConfigError
from .connargs import libpq_env
from .datacompare import chunk_hashes, primary_key
from .gpgkeys import KeyProblem, check_recipients, encrypt_argv
from .manifest import Manifest, TableEntry, backup_id, now_text, utc_text
from .pgsession import exported_snapshot
from .pipeline import Pipeline, PipelineError, Stage
from .schema import SchemaError, pg_bindir
from .retention import Policy, PolicyError
from .s3settings import S3Error, S3Settings
from .prune import prune_store
from .shipping import ship_pending
from .sshship import ShipError, SshTarget
from .sshship import ship as ship_ssh
from .store import Backup, Store, StoreError

Progress = Callable[[int], None]
T = TypeVar("T")
HASH_CHUNK_ROWS = 10000


class BackupError(RuntimeError):
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
    # Tier 1's retention, applied after each run (None: keep everything).
    retention: Policy | None = None
    # Where each run ships its backup (and any earlier one a tier still misses).
    tier2: SshTarget | None = None
    tier3: S3Settings | None = None


@dataclass
class BackupRun:
    manifest: Manifest
    # per tier: {"shipped": [ids], "error": ""}
    shipping: dict[str, dict]
    # retention's decisions on tier 1 (removed ones have keep false)
    retention: list[dict]

    @property
    def shipping_errors(self) -> dict[str, str]:
        return {tier: r["error"] for tier, r in self.shipping.items() if r["error"]}


class ShippingFailed(BackupError):
    """The backup was taken; a tier did not receive it."""

    def __init__(self, message: str, run: BackupRun):
        super().__init__(message)
        self.run = run


REQUIRED = ("conninfo", "directory", "keyring", "recipients")


def settings_from(config: dict) -> BackupSettings:
    missing = [key for key in REQUIRED if not config.get(key)]
    if missing:
        raise ConfigError("missing setting: " + ", ".join(f"{key} (pg_backup_{key})" for key in missing))
    try:
        retention = Policy.from_dict(config["retention"], "pg_backup_retention") if config.get("retention") else None
        tier2 = SshTarget.from_dict(config["tier2"], "pg_backup_tier2") if config.get("tier2") else None
        tier3 = S3Settings.from_dict({**config["tier3"], **_credentials(config.get("tier3_credentials_file"))},
                                     "pg_backup_tier3") if config.get("tier3") else None
    except (PolicyError, ShipError, S3Error, TypeError) as exc:
        raise ConfigError(str(exc)) from exc
    return BackupSettings(
        conninfo=config["conninfo"], directory=config["directory"], keyring=config["keyring"],
        recipients=list(config["recipients"]), compression_level=int(config.get("compression_level", 3)),
        compression_threads=int(config.get("compression_threads", 1)),
        table_hashes=bool(config.get("table_hashes", False)),
        reserve_bytes=int(config.get("reserve_mb", 0)) << 20, server_name=config.get("server_name") or "",
        retention=retention, tier2=tier2, tier3=tier3)


def _credentials(path: str | None) -> dict:
    """Tier 3's keys, kept out of the main configuration (which Ansible may
    show in a diff): {"access_key_id": ..., "secret_access_key": ...}."""
    if not path:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read tier 3's credentials from {path} (pg_backup_tier3_credentials): {exc}") from exc
    return {k: values[k] for k in ("access_key_id", "secret_access_key") if values.get(k)}


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
            for path in store.debris():
                path.unlink()
            return _take(settings, store, progress)
    return _guarded(settings, locked)


def check_backup(settings: BackupSettings) -> dict:
    """Everything take_backup checks before it dumps, without dumping (check
    mode): the directory, the keys, the tools, the database, the space. It
    takes no lock and removes nothing, so it neither changes the directory
    nor fails because the timer's backup is running."""
    def checks(store: Store) -> dict:
        with ExitStack() as stack:
            facts, _ = _prepare(settings, store, stack)
        return {k: v for k, v in facts.items() if k not in ("snapshot", "pg_dump")}
    return _guarded(settings, checks)


def run_backup(settings: BackupSettings, progress: Progress | None = None) -> BackupRun:
    """What the timer runs: a backup, then shipping to every configured
    tier (whatever a tier still misses, oldest first), then tier 1's
    retention, all under the directory's lock; the outcome is recorded for
    status. A tier that fails does not stop the others; the run then raises
    ShippingFailed, which carries the backup that was taken."""
    store = Store(settings.directory)
    started = now_text()

    def cycle(store: Store) -> BackupRun:
        with store.lock():
            for path in store.debris():
                path.unlink()
            manifest = _take(settings, store, progress)
            shipping = ship_pending(store, shippers_for(settings))
            retention = []
            if settings.retention is not None:
                retention = [d.as_dict() for d in prune_store(
                    store, settings.retention, datetime.now(timezone.utc), dry_run=False,
                    holds=lambda b: [f"not shipped to {tier} yet" for tier, r in shipping.items()
                                     if b.id not in store.shipped().get(tier, {})])]
            return BackupRun(manifest, shipping, retention)

    try:
        run = _guarded(settings, cycle)
    except BackupError as exc:
        _record(store, {"result": "failed", "started": started, "error": str(exc)})
        raise
    manifest = run.manifest
    _record(store, {"result": "ok", "started": started, "finished": manifest.finished, "backup": manifest.id,
                    "size": manifest.size, "error": "", "shipping": run.shipping,
                    "removed": [d["id"] for d in run.retention if not d["keep"]]})
    if run.shipping_errors:
        raise ShippingFailed(f"backup {manifest.id} taken, but " + "; ".join(
            f"{tier}: {error}" for tier, error in run.shipping_errors.items()), run)
    return run


def shippers_for(settings: BackupSettings) -> dict[str, Callable[[Backup], dict]]:
    shippers: dict[str, Callable[[Backup], dict]] = {}
    if settings.tier2 is not None:
        target = settings.tier2
        shippers["tier2"] = lambda backup: ship_ssh(backup, target)
    if settings.tier3 is not None:
        try:
            from .s3store import S3Store  # boto3 only where tier 3 is used
        except ImportError as exc:
            raise BackupError(f"tier 3 (pg_backup_tier3) needs boto3: {exc} (the pg_backup role installs "
                              "python3-boto3)") from exc
        shippers["tier3"] = S3Store(settings.tier3).ship
    return shippers


def _record(store: Store, status: dict) -> None:
    try:
        store.write_status(status)
    except OSError:
        pass  # a full disk must not replace the backup's own error; status then shows the older record


def _guarded(settings: BackupSettings, work: Callable[[Store], T]) -> T:
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
        raise BackupError(f"cannot connect to the database (pg_backup_conninfo): {str(exc).strip()}") from exc
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
            "SELECT on them (GRANT SELECT ON LARGE OBJECT <oid> TO " f"{conn.info.user}) or set pg_backup_conninfo "
            "to their owner")


def _take(settings: BackupSettings, store: Store, progress: Progress | None) -> Manifest:
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
