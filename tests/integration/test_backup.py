"""Backups on a real PostgreSQL 15 server with real gpg keys: taken, verified
at every level, restored equal to the source, while the application writes."""

from __future__ import annotations

import hashlib
import re
import stat
import threading
import time

import pytest
from backuptest import DBNAME, cli, counts, keyring_with, settings, write_config

from pgharbor.backup.keys import secret_keyring
from pgharbor.backup.manifest import PARTIAL_SUFFIX, Manifest
from pgharbor.backup.restore import restore_into
from pgharbor.backup.store import Store
from pgharbor.backup.take import take_backup
from pgharbor.backup.verify import verify
from pgharbor.migration.compare import compare
from pgharbor.pg.databases import create_database


@pytest.fixture
def backed_up(awkward_server, backup_keys, tmp_path):
    directory = tmp_path / "tier1"
    directory.mkdir(mode=0o700)
    keyring = keyring_with(tmp_path, backup_keys.ops, backup_keys.escrow)
    s = settings(awkward_server, directory, keyring, [backup_keys.ops.fingerprint, backup_keys.escrow.fingerprint],
                 table_hashes=True)
    return s, take_backup(s)


def test_backup_files_and_manifest(awkward_server, backup_keys, backed_up):
    s, manifest = backed_up
    [backup] = Store(s.directory).backups()
    data = backup.artefact.read_bytes()
    assert len(data) == manifest.size
    assert hashlib.sha256(data).hexdigest() == manifest.sha256
    # encrypted: neither the dump's signature nor a value from the data shows
    assert b"PGDMP" not in data and b"hello large object" not in data
    assert stat.S_IMODE(backup.artefact.stat().st_mode) == 0o600
    assert not list(backup.artefact.parent.glob("*" + PARTIAL_SUFFIX))
    # the manifest on disk is the one returned, and describes the database
    assert Manifest.from_json(backup.manifest_path.read_text()) == manifest
    assert {name: entry.rows for name, entry in manifest.tables.items()} == counts(awkward_server, DBNAME)
    assert all(entry.hash for entry in manifest.tables.values())
    assert manifest.large_objects == 2
    assert manifest.encryption["recipients"] == [backup_keys.ops.fingerprint, backup_keys.escrow.fingerprint]
    assert manifest.database == DBNAME and manifest.server_version.startswith("15.")
    assert manifest.tools["pg_dump"].startswith("pg_dump (PostgreSQL) 15")
    assert manifest.started <= manifest.finished


def test_verify_every_level_with_either_key(awkward_server, backup_keys, backed_up):
    s, _ = backed_up
    [backup] = Store(s.directory).backups()
    assert verify(backup, "checksum").passed == ["checksum"]
    escrow = verify(backup, "readable", private_key=backup_keys.escrow.secret)
    assert escrow.passed == ["checksum", "readable"]
    record = verify(backup, "restore", private_key=backup_keys.ops.secret, passphrase=backup_keys.ops.passphrase,
                    server=awkward_server.conninfo())
    assert record.passed == ["checksum", "readable", "restore"]
    assert record.tables == len(backup.manifest.tables) and record.rows == backup.manifest.total_rows
    assert record.restore_seconds and record.restore_seconds > 0
    # the scratch database is gone
    with awkward_server.connect() as conn:
        assert not conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'pgharbor_verify%'").fetchall()


def test_restore_equals_source(awkward_server, backup_keys, backed_up):
    s, _ = backed_up
    [backup] = Store(s.directory).backups()
    create_database(awkward_server.conninfo(), "restored")
    with secret_keyring(backup_keys.escrow.secret) as keyring:
        restore_into(backup, keyring, awkward_server.conninfo("restored"), keep_owners=True)
    report = compare(awkward_server.conninfo(DBNAME), awkward_server.conninfo("restored"))
    assert report.equal, report.differences()
    assert counts(awkward_server, "restored") == counts(awkward_server, DBNAME)


def test_writes_continue_during_backup(pg_server, backup_keys, tmp_path):
    """The application inserts while the dump runs: its writes are not
    blocked, and the backup is still one consistent snapshot."""
    with pg_server.connect(autocommit=True) as conn:
        conn.execute("CREATE DATABASE busy")
    with pg_server.connect("busy", autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp(), "
                     "payload text)")
        conn.execute("INSERT INTO events (payload) SELECT md5(i::text) || repeat('x', 200) "
                     "FROM generate_series(1, 20000) i")
    stop = threading.Event()
    committed: list[float] = []

    def application() -> None:
        with pg_server.connect("busy", autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO events (payload) VALUES ('during the backup')")
                committed.append(time.monotonic())

    directory = tmp_path / "tier1"
    directory.mkdir()
    keyring = keyring_with(tmp_path, backup_keys.escrow)
    writer = threading.Thread(target=application)
    writer.start()
    try:
        time.sleep(0.2)
        begin = time.monotonic()
        # level 19 makes the dump slow enough to overlap many inserts
        manifest = take_backup(settings(pg_server, directory, keyring, [backup_keys.escrow.fingerprint],
                                        dbname="busy", compression_level=19))
        end = time.monotonic()
    finally:
        stop.set()
        writer.join()
    during = [t for t in committed if begin < t < end]
    assert len(during) > 10, f"only {len(during)} inserts committed during a {end - begin:.1f} s backup"
    final = counts(pg_server, "busy")["public.events"]
    assert 20000 <= manifest.tables["public.events"].rows < final
    [backup] = Store(directory).backups()
    record = verify(backup, "restore", private_key=backup_keys.escrow.secret, server=pg_server.conninfo())
    assert record.rows == manifest.tables["public.events"].rows


def test_cli_run_list_status_verify(awkward_server, backup_keys, tmp_path):
    directory = tmp_path / "tier1"
    directory.mkdir()
    keyring = keyring_with(tmp_path, backup_keys.escrow)
    s = settings(awkward_server, directory, keyring, [backup_keys.escrow.fingerprint])
    config = write_config(tmp_path / "backup.json", s, max_age_hours=1)
    gauges = tmp_path / "textfile" / "pgharbor_backup_tier1.prom"
    gauges.parent.mkdir()
    status = cli(config, "status", "--prometheus", str(gauges))
    assert status.returncode == 1 and "no backup in" in status.stdout
    assert re.search(r'^pgharbor_backup_tier_healthy\{host="[^"]+",tier="tier1"\} 0$', gauges.read_text(), re.M)
    run = cli(config, "run")
    assert run.returncode == 0, run.stderr
    [backup] = Store(directory).backups()
    assert backup.id in run.stdout and backup.id in cli(config, "list").stdout
    status = cli(config, "status", "--prometheus", str(gauges))
    assert status.returncode == 0, status.stdout
    assert "health:      ok" in status.stdout
    # the gauges node_exporter publishes: replaced whole, readable by its user, nothing left beside
    assert re.search(r'^pgharbor_backup_count\{host="[^"]+",tier="tier1"\} 1$', gauges.read_text(), re.M)
    assert re.search(r'^pgharbor_backup_tier_healthy\{host="[^"]+",tier="tier1"\} 1$', gauges.read_text(), re.M)
    assert gauges.stat().st_mode & 0o777 == 0o644 and [p.name for p in gauges.parent.iterdir()] == [gauges.name]
    key_file = tmp_path / "escrow.asc"
    key_file.write_text(backup_keys.escrow.secret)
    checked = cli(config, "verify", "--level", "readable", "--private-key-file", str(key_file))
    assert checked.returncode == 0, checked.stderr
    assert "checksum, readable passed" in checked.stdout
    assert '"level": "readable"' in cli(config, "status", "--json").stdout
