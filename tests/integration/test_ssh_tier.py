"""Tier 2 against a real sshd on loopback whose key for the DB host is
restricted as the backup_server role restricts it (restrict + rrsync
write-only, no delete): a backup shipped and taken in by the
intake; the restrictions hold; and the faults: a connection cut mid-rsync,
an unpinned host key, a damaged arrival, a full disk on the server."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from backuptest import backup_server_cli, synthetic
from sshserver import keygen
from tcpproxy import TcpProxy

from pgharbor.backup.store import Store
from pgharbor.tiers.fetch import FetchError, Sources, fetched
from pgharbor.tiers.intake import last_arrivals, take_in
from pgharbor.tiers.ssh import ShipError, SshTarget, ship

MIB = 1 << 20


def visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def test_shipped_then_taken_in_after_the_server_checked_it(tier2_host, tmp_path):
    target, dirs = tier2_host
    tier1 = tmp_path / "tier1"
    tier1.mkdir()
    backup = synthetic(tier1, 3 * MIB)
    result = ship(backup, target)
    assert result["bytes"] == backup.manifest.size
    assert visible(dirs["incoming"]) == sorted([backup.artefact.name, backup.manifest_path.name])
    [arrival] = take_in(dirs["incoming"], dirs["store"], dirs["quarantine"])
    assert arrival.result == "stored" and backup.manifest.sha256 in arrival.detail
    assert visible(dirs["incoming"]) == []
    [stored] = Store(dirs["store"]).backups()
    assert stored.manifest == backup.manifest
    assert stored.artefact.read_bytes() == backup.artefact.read_bytes()
    assert last_arrivals(dirs["store"])[-1]["result"] == "stored"
    # shipped again (the DB host cannot know the intake ran): a duplicate, dropped
    ship(backup, target)
    [again] = take_in(dirs["incoming"], dirs["store"], dirs["quarantine"])
    assert again.result == "duplicate" and visible(dirs["incoming"]) == []


def test_the_db_host_key_can_neither_read_nor_delete_nor_reach_the_store(tier2_host, tmp_path):
    target, dirs = tier2_host
    waiting = dirs["incoming"] / "arrived.dump.zst.gpg"
    waiting.write_bytes(b"not taken in yet")
    history = dirs["store"] / "older.dump.zst.gpg"
    history.write_bytes(b"history")
    ssh = " ".join(target.ssh_command())
    remote = f"{target.user}@{target.host}:"

    def rsync(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["rsync", "-e", ssh, *args], capture_output=True, text=True, check=False)

    # read: from its own directory, or the store through ..
    for source in ("arrived.dump.zst.gpg", "../../store/db1/older.dump.zst.gpg"):
        fetched = tmp_path / "fetched"
        read = rsync(f"{remote}{source}", str(fetched))
        assert read.returncode != 0 and not fetched.exists(), read.stderr
    # delete through rsync's options
    empty = tmp_path / "empty"
    empty.mkdir()
    assert rsync("-r", "--delete", f"{empty}/", remote).returncode != 0
    # write over the store through ..
    forged = tmp_path / "older.dump.zst.gpg"
    forged.write_bytes(b"forged content")
    rsync(str(forged), f"{remote}../../store/db1/")
    # a shell, or any other command
    shell = subprocess.run([*target.ssh_command(), f"{target.user}@{target.host}", "rm", "-rf", str(dirs["store"])],
                           capture_output=True, text=True, check=False)
    assert shell.returncode != 0
    assert history.read_bytes() == b"history" and waiting.read_bytes() == b"not taken in yet"


def test_host_key_is_pinned(tier2_host, tmp_path, sshd):
    target, _ = tier2_host
    other = tmp_path / "other_host"
    other_public = keygen(other, "someone else")
    (tmp_path / "wrong_known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {other_public}\n")
    (tmp_path / "empty_known_hosts").write_text("")
    (tmp_path / "t1").mkdir()
    backup = synthetic(tmp_path / "t1", 1000)
    for known in ("wrong_known_hosts", "empty_known_hosts"):
        pinned = SshTarget(**{**target.__dict__, "known_hosts": str(tmp_path / known)})
        with pytest.raises(ShipError, match="host key does not match the pinned one.*pg_backup_tier2_host_keys"):
            ship(backup, pinned)


def test_unknown_client_key_is_refused(tier2_host, tmp_path):
    target, _ = tier2_host
    stranger = tmp_path / "stranger"
    keygen(stranger, "stranger")
    (tmp_path / "t1").mkdir()
    backup = synthetic(tmp_path / "t1", 1000)
    with pytest.raises(ShipError, match="refused this host's key.*backup_server authorizes it"):
        ship(backup, SshTarget(**{**target.__dict__, "identity": str(stranger)}))


def test_connection_cut_mid_rsync_leaves_nothing_visible(tier2_host, tmp_path, sshd):
    target, dirs = tier2_host
    (tmp_path / "t1").mkdir()
    backup = synthetic(tmp_path / "t1", 20 * MIB)
    with TcpProxy(sshd.port) as proxy:
        via_proxy = SshTarget(**{**target.__dict__, "port": proxy.port,
                                 "known_hosts": str(sshd.known_hosts(tmp_path / "kh_proxy", proxy.port))})
        proxy.cut_after = 6 * MIB
        with pytest.raises(ShipError, match=r"shipping .*\.dump\.zst\.gpg to .* failed: .*tier-1 copy is kept"):
            ship(backup, via_proxy)
        # nothing under a final name: the intake has nothing to take
        assert backup.artefact.name not in visible(dirs["incoming"]) or \
            (dirs["incoming"] / backup.artefact.name).stat().st_size < backup.manifest.size
        assert backup.manifest_path.name not in visible(dirs["incoming"])
        assert take_in(dirs["incoming"], dirs["store"], dirs["quarantine"]) == []
        assert Store(dirs["store"]).backups() == []
        proxy.restore()
        ship(backup, via_proxy)
    [arrival] = take_in(dirs["incoming"], dirs["store"], dirs["quarantine"])
    assert arrival.result == "stored"


def test_damaged_arrival_is_quarantined_not_stored(tier2_host, tmp_path):
    target, dirs = tier2_host
    (tmp_path / "t1").mkdir()
    backup = synthetic(tmp_path / "t1", 200_000)
    ship(backup, target)
    arrived = dirs["incoming"] / backup.artefact.name
    data = bytearray(arrived.read_bytes())
    data[5000] ^= 1
    arrived.write_bytes(bytes(data))
    [arrival] = take_in(dirs["incoming"], dirs["store"], dirs["quarantine"])
    assert arrival.result == "quarantined" and "does not match the manifest" in arrival.detail
    assert Store(dirs["store"]).backups() == []
    assert visible(dirs["quarantine"]) == sorted([backup.artefact.name, backup.manifest_path.name])
    assert last_arrivals(dirs["store"])[-1]["result"] == "quarantined"


def test_manifest_waits_for_its_artefact(tier2_host, tmp_path):
    _, dirs = tier2_host
    (tmp_path / "t1").mkdir()
    backup = synthetic(tmp_path / "t1", 5000, datetime.now(timezone.utc) - timedelta(hours=1))
    (dirs["incoming"] / backup.manifest_path.name).write_bytes(backup.manifest_path.read_bytes())
    [arrival] = take_in(dirs["incoming"], dirs["store"], dirs["quarantine"])
    assert arrival.result == "waiting" and Store(dirs["store"]).backups() == []


@pytest.fixture
def small_incoming(tier2_host) -> Iterator[tuple[SshTarget, dict]]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    target, dirs = tier2_host
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(dirs["incoming"])], check=True)
    try:
        yield target, dirs
    finally:
        # the server side's rsync may still be exiting after the failed write
        for _ in range(50):
            if subprocess.run(["umount", str(dirs["incoming"])], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", str(dirs["incoming"])], check=True)


def test_backup_server_disk_full(small_incoming, tmp_path):
    target, dirs = small_incoming
    (tmp_path / "t1").mkdir()
    backup = synthetic(tmp_path / "t1", 6 * MIB)
    # rsync's own words ("No space left on device") do not always arrive before the connection closes
    with pytest.raises(ShipError, match=r"the backup server('s disk is full| could not write the file .*is its disk "
                                        r"full\?).*free space there"):
        ship(backup, target)
    assert visible(dirs["incoming"]) == []


def test_backup_server_command(tier2_host, tmp_path):
    target, dirs = tier2_host
    root = dirs["store"].parent.parent
    config = tmp_path / "backup-server.json"
    config.write_text(json.dumps({"root": str(root), "hosts": {"db1": {"retention": {"daily": 1},
                                                                        "max_age_hours": 2}}}))
    (tmp_path / "t1").mkdir()
    old = synthetic(tmp_path / "t1", 3000, datetime.now(timezone.utc) - timedelta(days=3))
    new = synthetic(tmp_path / "t1", 3000)
    for backup in (old, new):
        ship(backup, target)
    dry = backup_server_cli(config, "run", "--dry-run")
    assert dry.returncode == 0 and visible(dirs["incoming"]), "a dry run takes nothing in"
    run = backup_server_cli(config, "run")
    assert run.returncode == 0, run.stderr
    assert f"db1: {old.id} stored" in run.stdout and f"db1: {old.id} removed by retention" in run.stdout
    assert [b.id for b in Store(dirs["store"]).backups()] == [new.id]
    status = backup_server_cli(config, "status", "--json")
    [report] = json.loads(status.stdout)
    assert status.returncode == 0 and report["healthy"] and report["newest"] == new.id
    # a damaged arrival turns the status red, naming the quarantine
    damaged = synthetic(tmp_path / "t1", 3000, datetime.now(timezone.utc) + timedelta(seconds=5))
    ship(damaged, target)
    (dirs["incoming"] / damaged.artefact.name).write_bytes(b"x" * 3000)
    backup_server_cli(config, "run")
    status = backup_server_cli(config, "status", "--prometheus", str(tmp_path / "tier2.prom"))
    assert status.returncode == 1 and "failed their check on arrival" in status.stdout
    gauges = (tmp_path / "tier2.prom").read_text()
    quarantined = len(list(dirs["quarantine"].iterdir()))
    assert quarantined and f'pgharbor_backup_quarantined{{host="db1",tier="tier2"}} {quarantined}\n' in gauges
    assert 'pgharbor_backup_tier_healthy{host="db1",tier="tier2"} 0\n' in gauges
    # a host without retention is named
    config.write_text(json.dumps({"root": str(root), "hosts": {"db1": {}}}))
    bad = backup_server_cli(config, "run")
    assert bad.returncode == 1 and "backup_server_clients[db1].retention keeps nothing" in bad.stderr


def test_restore_key_reads_one_store_and_fetch_falls_back_to_it(tier2_host, sshd, tmp_path):
    """The operators' restore key (rrsync -ro on the host's store, as
    backup_server authorizes it) brings a backup that tier 1 no longer has;
    a damaged stored copy is refused."""
    target, dirs = tier2_host
    restore_key = tmp_path / "restore"
    sshd.authorize(keygen(restore_key, "restore"), f'restrict,command="rrsync -ro {dirs["store"]}"')
    tier1 = tmp_path / "t1"
    tier1.mkdir()
    old = synthetic(tier1, 300_000, datetime.now(timezone.utc) - timedelta(hours=2))
    new = synthetic(tier1, 200_000)
    for backup in (old, new):
        ship(backup, target)
    take_in(dirs["incoming"], dirs["store"], dirs["quarantine"])
    Store(tier1).remove(old)
    reader = SshTarget(**{**target.__dict__, "identity": str(restore_key)})
    sources = Sources(directory=str(tier1), order=["tier1", "tier2"], tier2=reader)
    with fetched(old.id, sources) as found:
        assert found.tier == "tier2" and found.skipped[0].startswith(f"tier1: no complete backup {old.id!r}")
        assert found.backup.artefact.read_bytes() == (dirs["store"] / old.artefact.name).read_bytes()
        assert found.backup.artefact.parent == tier1 / ".fetched"
    assert not (tier1 / ".fetched").exists()
    with fetched("latest", sources) as found:
        assert found.tier == "tier1" and found.backup.id == new.id
    # the restore key cannot write
    forged = tmp_path / "forged.dump.zst.gpg"
    forged.write_bytes(b"x")
    write = subprocess.run(["rsync", "-e", " ".join(reader.ssh_command()), str(forged),
                            f"{reader.user}@{reader.host}:"], capture_output=True, text=True, check=False)
    assert write.returncode != 0 and not (dirs["store"] / forged.name).exists()
    # a damaged copy on the backup server is refused, and no other tier has it
    stored = dirs["store"] / old.artefact.name
    stored.write_bytes(b"y" * stored.stat().st_size)
    with pytest.raises(FetchError, match=rf"backup '{old.id}' is in no tier that answered: tier1: .*; "
                                         r"tier2: .* does not match its manifest"):
        with fetched(old.id, sources):
            pass
