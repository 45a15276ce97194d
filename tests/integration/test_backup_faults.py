"""Backup faults, each proved on a real server with real keys: a killed dump,
damaged files, wrong and missing keys, a full disk, an unreachable database,
a second run at the same time."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from backuptest import REPO, cli, keyring_with, settings, write_config

from pgharbor.backup.keys import secret_keyring
from pgharbor.backup.manifest import PARTIAL_SUFFIX
from pgharbor.backup.store import Store
from pgharbor.backup.take import BackupError, take_backup
from pgharbor.backup.verify import VerifyError, verify


@pytest.fixture
def tier(tmp_path) -> Path:
    directory = tmp_path / "tier1"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def escrow_settings(awkward_server, backup_keys, tmp_path, tier):
    keyring = keyring_with(tmp_path, backup_keys.escrow)
    return settings(awkward_server, tier, keyring, [backup_keys.escrow.fingerprint])


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def test_killed_mid_dump_leaves_no_backup_and_no_lock(pg_server, backup_keys, tmp_path, tier):
    with pg_server.connect(autocommit=True) as conn:
        conn.execute("CREATE DATABASE big")
    with pg_server.connect("big", autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT i, md5(i::text) || repeat('y', 300) AS v "
                     "FROM generate_series(1, 200000) i")
    keyring = keyring_with(tmp_path, backup_keys.escrow)
    s = settings(pg_server, tier, keyring, [backup_keys.escrow.fingerprint], dbname="big", compression_level=19)
    config = write_config(tmp_path / "backup.json", s)
    proc = subprocess.Popen([sys.executable, "-m", "pgharbor.cli.pgharbor_backup", "--config", str(config), "run"],
                            env={**os.environ, "PYTHONPATH": str(REPO / "module_utils")})
    deadline = time.monotonic() + 60
    while not any(p.name.endswith(PARTIAL_SUFFIX) and p.stat().st_size > 0 for p in tier.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "the backup ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # what is left is recognisably partial: nothing is listed as a backup
    assert [n for n in visible(tier) if n.endswith(PARTIAL_SUFFIX)]
    assert not [n for n in visible(tier) if n.endswith(".manifest.json")]
    assert Store(tier).backups() == []
    # the lock died with the process: the next run works and clears the debris
    s.compression_level = 1
    again = cli(write_config(config, s), "run")
    assert again.returncode == 0, again.stderr
    [backup] = Store(tier).backups()
    assert visible(tier) == sorted([backup.artefact.name, backup.manifest_path.name])


def test_truncated_file_is_caught(escrow_settings, backup_keys):
    take_backup(escrow_settings)
    [backup] = Store(escrow_settings.directory).backups()
    data = backup.artefact.read_bytes()
    backup.artefact.write_bytes(data[: len(data) // 2])
    with pytest.raises(VerifyError, match="at level checksum: checksum mismatch"):
        verify(backup, "checksum")


def _rewrite_manifest_to_match(backup) -> None:
    """A file damaged before its checksum was taken (a bad disk controller,
    say): the checksum matches, the content does not."""
    data = json.loads(backup.manifest_path.read_text())
    content = backup.artefact.read_bytes()
    data["size"], data["sha256"] = len(content), hashlib.sha256(content).hexdigest()
    backup.manifest_path.write_text(json.dumps(data))


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damage_behind_a_matching_checksum_is_caught_by_reading(escrow_settings, backup_keys, damage):
    take_backup(escrow_settings)
    [backup] = Store(escrow_settings.directory).backups()
    data = bytearray(backup.artefact.read_bytes())
    if damage == "truncated":
        data = data[: len(data) - 4096]
    else:
        data[len(data) // 2] ^= 0x01
    backup.artefact.write_bytes(bytes(data))
    with pytest.raises(VerifyError, match="checksum mismatch"):
        verify(backup, "checksum")
    _rewrite_manifest_to_match(backup)
    [backup] = Store(escrow_settings.directory).backups()
    assert verify(backup, "checksum").passed == ["checksum"]
    with pytest.raises(VerifyError, match="at level readable: .*damaged or truncated") as caught:
        verify(backup, "readable", private_key=backup_keys.escrow.secret)
    assert caught.value.verification.passed == ["checksum"]


def test_pg_restore_list_alone_misses_truncation(escrow_settings, backup_keys, tmp_path):
    """Why level 2 reads the whole stream: the table of contents of a
    truncated dump still lists fine."""
    take_backup(escrow_settings)
    [backup] = Store(escrow_settings.directory).backups()
    with secret_keyring(backup_keys.escrow.secret) as keyring:
        plain = subprocess.run(keyring.decrypt_argv(backup.artefact), capture_output=True, check=True).stdout
    dump = subprocess.run(["zstd", "-d", "-c"], input=plain, capture_output=True, check=True).stdout
    cut = tmp_path / "cut.dump"
    cut.write_bytes(dump[: int(len(dump) * 0.9)])
    listing = subprocess.run(["pg_restore", "--list", str(cut)], capture_output=True, check=False)
    assert listing.returncode == 0 and b"TABLE DATA" in listing.stdout
    full = subprocess.run(["pg_restore", "--file=/dev/null", str(cut)], capture_output=True, check=False)
    assert full.returncode != 0


def test_wrong_key_is_named(escrow_settings, backup_keys):
    take_backup(escrow_settings)
    [backup] = Store(escrow_settings.directory).backups()
    with pytest.raises(VerifyError) as caught:
        verify(backup, "readable", private_key=backup_keys.stranger.secret)
    message = str(caught.value)
    assert "cannot decrypt" in message and backup_keys.escrow.fingerprint in message
    assert "pg_backup_private_key" in message


def test_missing_and_expired_keys_refused_before_dumping(awkward_server, backup_keys, tmp_path, tier):
    keyring = keyring_with(tmp_path, backup_keys.escrow, backup_keys.expired)
    missing = settings(awkward_server, tier, keyring,
                       [backup_keys.escrow.fingerprint, backup_keys.stranger.fingerprint])
    with pytest.raises(BackupError, match=f"{backup_keys.stranger.fingerprint} is not in the keyring"):
        take_backup(missing)
    expired = settings(awkward_server, tier, keyring, [backup_keys.expired.fingerprint])
    with pytest.raises(BackupError, match=f"{backup_keys.expired.fingerprint} .* expired on 2020-01-02"):
        take_backup(expired)
    none = settings(awkward_server, tier, keyring, [])
    with pytest.raises(BackupError, match="set recipients"):
        take_backup(none)
    assert visible(tier) == []


def test_unreachable_database_refused_before_dumping(awkward_server, backup_keys, tmp_path, tier):
    keyring = keyring_with(tmp_path, backup_keys.escrow)
    s = settings(awkward_server, tier, keyring, [backup_keys.escrow.fingerprint])
    s.conninfo = s.conninfo.replace(f"port={awkward_server.port}", "port=1")
    with pytest.raises(BackupError, match=r"cannot connect to the database \(pg_backup_db\)"):
        take_backup(s)
    assert visible(tier) == []


def test_second_run_at_the_same_time_is_refused(escrow_settings):
    store = Store(escrow_settings.directory)
    with store.lock():
        with pytest.raises(BackupError, match=f"another backup is running in .* \\(pid {os.getpid()}\\)"):
            take_backup(escrow_settings)
    take_backup(escrow_settings)
    assert len(store.backups()) == 1


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A real 12 MiB file system (tmpfs) for the backup directory."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_full_disk(pg_server, backup_keys, tmp_path, small_disk):
    with pg_server.connect(autocommit=True) as conn:
        conn.execute("CREATE DATABASE growing")
    with pg_server.connect("growing", autocommit=True) as conn:
        conn.execute("CREATE TABLE blobs (id int PRIMARY KEY, data bytea)")
        conn.execute("INSERT INTO blobs VALUES (0, 'small')")
    keyring = keyring_with(tmp_path, backup_keys.escrow)
    s = settings(pg_server, small_disk, keyring, [backup_keys.escrow.fingerprint], dbname="growing")
    first = take_backup(s)
    with pg_server.connect("growing", autocommit=True) as conn:
        # md5 output does not compress: about 16 MiB of dump, more than the disk holds
        conn.execute("INSERT INTO blobs SELECT i, decode(string_agg(md5(i::text || '-' || j::text), ''), 'hex') "
                     "FROM generate_series(1, 1000) i, generate_series(1, 1000) j GROUP BY i")
    # Estimated from the last backup, the run starts, and the disk fills up mid-write.
    with pytest.raises(BackupError, match=r"no space left in .* free space or point pg_backup_directory"):
        take_backup(s)
    # nothing half-written is left; the earlier backup is still listed and sound
    [backup] = Store(small_disk).backups()
    assert backup.id == first.id
    assert not [n for n in visible(small_disk) if n.endswith(PARTIAL_SUFFIX)]
    assert verify(backup, "checksum").passed == ["checksum"]
    # Checked before dumping: a reserve the disk cannot keep ...
    s.reserve_bytes = 64 << 20
    with pytest.raises(BackupError, match=r"not enough free space .*last backup's size.*pg_backup_reserve_mb"):
        take_backup(s)
    # ... and a first backup is estimated from the database's size
    fresh = small_disk / "other"
    fresh.mkdir()
    s.directory, s.reserve_bytes = str(fresh), 0
    with pytest.raises(BackupError, match=r"not enough free space .*the database's size"):
        take_backup(s)
    assert visible(fresh) == []


def test_unreadable_large_objects_refused_before_dumping(awkward_server, backup_keys, tmp_path, tier):
    """pg_read_all_data (the backup profile) does not cover large objects: the
    backup names the missing grant instead of failing halfway through pg_dump."""
    with awkward_server.connect("appdb", autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS lo_reader")
        conn.execute("CREATE ROLE lo_reader LOGIN PASSWORD 'lo' BYPASSRLS IN ROLE pg_read_all_data")
        oids = [r[0] for r in conn.execute("SELECT oid FROM pg_largeobject_metadata")]
    assert oids, "the awkward database should hold large objects"
    keyring = keyring_with(tmp_path, backup_keys.escrow)
    s = settings(awkward_server, tier, keyring, [backup_keys.escrow.fingerprint])
    s.conninfo = awkward_server.conninfo("appdb", user="lo_reader", password="lo")
    with pytest.raises(BackupError, match=rf"lo_reader may not read {len(oids)} of {len(oids)} large objects.*"
                                          r"GRANT SELECT ON LARGE OBJECT"):
        take_backup(s)
    assert visible(tier) == []
    with awkward_server.connect("appdb", autocommit=True) as conn:
        for oid in oids:
            conn.execute(f"GRANT SELECT ON LARGE OBJECT {oid} TO lo_reader")
    try:
        assert take_backup(s).large_objects == len(oids)
    finally:
        with awkward_server.connect("appdb", autocommit=True) as conn:
            conn.execute("DROP OWNED BY lo_reader")
            conn.execute("DROP ROLE lo_reader")
