"""Shared parts of the backup tests: a server holding the awkward database,
keys, and the settings/config that point the backup code at them."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from gpgtest import TestKey
from migrationdb import AWKWARD
from pgserver import PgServer
from psycopg import sql

from pgharbor.backup.keys import import_keys
from pgharbor.backup.manifest import Manifest, backup_id, utc_text
from pgharbor.backup.store import Backup, Store
from pgharbor.cli.agent import AgentSettings

REPO = Path(__file__).resolve().parent.parent
DBNAME = "appdb"


def create_awkward(server: PgServer, dbname: str = DBNAME) -> None:
    with server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    with server.connect(dbname, autocommit=True) as conn:
        conn.execute(AWKWARD.read_text())


def counts(server: PgServer, dbname: str) -> dict[str, int]:
    """Row counts as a plain query sees them, independent of the code under test."""
    with server.connect(dbname, autocommit=True) as conn:
        conn.execute("SET row_security = off")
        names = conn.execute(
            """SELECT format('%s.%s', n.nspname, c.relname), format('%I.%I', n.nspname, c.relname)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')""").fetchall()
        return {label: conn.execute(f"SELECT count(*) FROM ONLY {ident}").fetchone()[0] for label, ident in names}


@dataclass
class Keys:
    ops: TestKey
    escrow: TestKey
    expired: TestKey
    stranger: TestKey


def keyring_with(directory: Path, *keys: TestKey) -> str:
    home = directory / "keyring"
    import_keys(home, "".join(k.public for k in keys))
    return str(home)


def settings(server: PgServer, directory: Path, keyring: str, recipients: list[str], **kwargs) -> AgentSettings:
    return AgentSettings(conninfo=server.conninfo(kwargs.pop("dbname", DBNAME)), directory=str(directory),
                         keyring=keyring, recipients=recipients, server_name="testhost", **kwargs)


def write_config(path: Path, s: AgentSettings, **extra) -> Path:
    path.write_text(json.dumps({"db": s.conninfo, "directory": s.directory, "keyring": s.keyring,
                                "recipients": s.recipients, "compression_level": s.compression_level, **extra}))
    return path


def cli(config: Path, *args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """The pgharbor-backup command, as the timer runs it."""
    return subprocess.run([sys.executable, "-m", "pgharbor.cli.pgharbor_backup", "--config", str(config), *args],
                          env={**os.environ, "PYTHONPATH": str(REPO / "module_utils"), **(env or {})},
                          capture_output=True, text=True, check=False, **kwargs)


def synthetic(directory: Path, size: int, started: datetime | None = None) -> Backup:
    """A tier-1-shaped backup of random bytes, for what only moves files."""
    started = started or datetime.now(timezone.utc)
    store = Store(directory)
    bid = backup_id("synthetic", started)
    writer = store.writer(bid)
    data = os.urandom(size)
    writer(data)
    writer.publish()
    manifest = Manifest(id=bid, database="synthetic", server="testhost", server_version="15", started=utc_text(started),
                        finished=utc_text(started), snapshot="-", tools={}, compression={}, encryption={},
                        artefact=writer.final.name, size=size, sha256=hashlib.sha256(data).hexdigest())
    store.publish_manifest(manifest)
    return next(b for b in store.backups() if b.id == bid)


def backup_server_cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    """pgharbor-backup-server, as the backup server's timers run it."""
    return subprocess.run([sys.executable, "-m", "pgharbor.cli.pgharbor_backup_server", "--config", str(config), *args],
                          env={**os.environ, "PYTHONPATH": str(REPO / "module_utils")},
                          capture_output=True, text=True, check=False)
