"""Tier 3 against a real S3 HTTP endpoint (the moto server on loopback):
a backup shipped, listed, read back and restorable; multipart uploads with
checksums; shipping twice replaces nothing; the backup server watching the
bucket (its gauges); and the faults: the endpoint going away mid-upload, a
tier-1 file damaged before shipping, a stored object damaged afterwards, a
bucket the backup server cannot read, a tier 3 past its RPO."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from backuptest import backup_server_cli, keyring_with, settings, synthetic
from s3server import ADMIN, REGION
from tcpproxy import TcpProxy

from pgharbor.backup.store import Store
from pgharbor.backup.take import take_backup
from pgharbor.backup.verify import verify
from pgharbor.tiers.s3 import S3Store
from pgharbor.tiers.s3settings import MIB, S3Error, S3Settings


@pytest.fixture
def bucket(s3_server, request) -> str:
    return s3_server.bucket(request.node.name.replace("_", "-")[:50].lower())


def tier3(s3_server, bucket: str, endpoint: str | None = None, **extra) -> S3Store:
    return S3Store(S3Settings(bucket=bucket, prefix="pgharbor/db1/", endpoint_url=endpoint or s3_server.url,
                              region=REGION, access_key_id=ADMIN["aws_access_key_id"],
                              secret_access_key=ADMIN["aws_secret_access_key"], **extra))


def keys_in(s3_server, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", []))


def test_real_backup_shipped_listed_and_restorable(awkward_server, backup_keys, s3_server, bucket, tmp_path):
    tier1 = tmp_path / "tier1"
    tier1.mkdir(mode=0o700)
    s = settings(awkward_server, tier1, keyring_with(tmp_path, backup_keys.escrow), [backup_keys.escrow.fingerprint])
    manifest = take_backup(s)
    [backup] = Store(tier1).backups()
    store = tier3(s3_server, bucket)
    shipped = store.ship(backup)
    assert shipped["backup"] == manifest.id and not shipped["already_there"]
    assert keys_in(s3_server, bucket) == [f"pgharbor/db1/{manifest.artefact}",
                                          f"pgharbor/db1/{manifest.id}.manifest.json"]
    head = s3_server.client().head_object(Bucket=bucket, Key=f"pgharbor/db1/{manifest.artefact}")
    assert head["Metadata"]["sha256"] == manifest.sha256 and head["ContentLength"] == manifest.size
    [stored] = store.backups()
    assert stored.manifest == manifest
    assert store.checksum(stored) == manifest.sha256
    # restore from tier 3 alone: a copy downloaded elsewhere reads back with the escrow key
    elsewhere = tmp_path / "restore"
    elsewhere.mkdir()
    copy = store.download(stored, elsewhere)
    assert verify(copy, "readable", private_key=backup_keys.escrow.secret).passed == ["checksum", "readable"]


def test_multipart_upload_with_part_checksums(s3_server, bucket, tmp_path):
    backup = synthetic(tmp_path, 23 * MIB + 17)
    store = tier3(s3_server, bucket, part_size_mb=5, concurrency=3)
    seen = []
    store.ship(backup, progress=seen.append)
    assert seen[-1] == backup.manifest.size and seen == sorted(seen)
    head = s3_server.client().head_object(Bucket=bucket, Key=f"pgharbor/db1/{backup.artefact.name}",
                                          ChecksumMode="ENABLED")
    assert head["ContentLength"] == backup.manifest.size and head["Metadata"]["sha256"] == backup.manifest.sha256
    assert head.get("ChecksumCRC32"), "the parts' CRC32 travelled with the object"
    [stored] = store.backups()
    assert store.checksum(stored) == backup.manifest.sha256
    assert not s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_shipping_twice_replaces_nothing(s3_server, bucket, tmp_path):
    backup = synthetic(tmp_path, 1000)
    store = tier3(s3_server, bucket)
    store.ship(backup)
    before = {o["Key"]: o["LastModified"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    time.sleep(1.1)
    again = store.ship(backup)
    after = {o["Key"]: o["LastModified"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    assert again["already_there"] and after == before


def test_listing_ignores_incomplete_backups(s3_server, bucket, tmp_path):
    complete, lone, short = (synthetic(tmp_path, 2000, datetime(2026, 12, 1, h, tzinfo=timezone.utc))
                             for h in (1, 2, 3))
    store = tier3(s3_server, bucket)
    store.ship(complete)
    admin = s3_server.client()
    admin.put_object(Bucket=bucket, Key=f"pgharbor/db1/{lone.artefact.name}", Body=lone.artefact.read_bytes())
    admin.put_object(Bucket=bucket, Key=f"pgharbor/db1/{short.artefact.name}", Body=b"cut short")
    admin.put_object(Bucket=bucket, Key=f"pgharbor/db1/{short.manifest_path.name}",
                     Body=short.manifest_path.read_bytes())
    admin.put_object(Bucket=bucket, Key="pgharbor/db1/garbage.manifest.json", Body=b"{not json")
    assert [b.id for b in store.backups()] == [complete.id]


def test_endpoint_down_mid_upload_then_shipped_by_the_next_run(s3_server, bucket, tmp_path):
    backup = synthetic(tmp_path, 24 * MIB)
    with TcpProxy(s3_server.port) as proxy:
        store = tier3(s3_server, bucket, f"http://127.0.0.1:{proxy.port}", part_size_mb=5, concurrency=1,
                      max_attempts=3, connect_timeout=2, read_timeout=5)
        proxy.cut_after = 8 * MIB  # down for good after the first part
        begin = time.monotonic()
        with pytest.raises(S3Error, match=rf"shipping {backup.id} to s3://{bucket}/pgharbor/db1/ at "
                                          r"http://127.0.0.1:\d+ failed: .*the tier-1 copy is kept"):
            store.ship(backup)
        assert time.monotonic() - begin < 60, "retries are bounded"
        # nothing that looks like a backup: no manifest, no artefact object
        assert keys_in(s3_server, bucket) == [] and store_backups(s3_server, bucket) == []
        assert backup.artefact.exists() and Store(tmp_path).backups() == [backup]
        left = s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        proxy.restore()
        shipped = store.ship(backup)
    assert shipped["aborted_uploads"] == len(left)
    assert not s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads")
    [stored] = store_backups(s3_server, bucket)
    assert stored.manifest.sha256 == backup.manifest.sha256


def test_short_outage_is_ridden_out_by_retries(s3_server, bucket, tmp_path):
    backup = synthetic(tmp_path, 12 * MIB)
    with TcpProxy(s3_server.port) as proxy:
        store = tier3(s3_server, bucket, f"http://127.0.0.1:{proxy.port}", part_size_mb=5, concurrency=1,
                      max_attempts=8)
        proxy.cut_after = 6 * MIB
        proxy.down_for = 0.5
        store.ship(backup)
    [stored] = store_backups(s3_server, bucket)
    assert stored.id == backup.id


def store_backups(s3_server, bucket):
    return tier3(s3_server, bucket).backups()


def test_tier1_file_damaged_before_shipping_is_not_shipped(s3_server, bucket, tmp_path):
    for size, part in ((3000, 5), (11 * MIB, 5)):  # single put and multipart
        backup = synthetic(tmp_path, size, datetime.now(timezone.utc) + timedelta(seconds=size))
        with open(backup.artefact, "r+b") as f:
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 1]))
        store = tier3(s3_server, bucket, part_size_mb=part)
        with pytest.raises(S3Error, match=rf"{backup.artefact} no longer matches its manifest.*not shipped"):
            store.ship(backup)
    assert store.backups() == [] and not any(k.endswith(".manifest.json") for k in keys_in(s3_server, bucket))
    assert not s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_object_damaged_in_the_bucket_is_caught(s3_server, bucket, tmp_path):
    backup = synthetic(tmp_path, 5000)
    store = tier3(s3_server, bucket)
    store.ship(backup)
    [stored] = store.backups()
    damaged = bytearray(backup.artefact.read_bytes())
    damaged[100] ^= 0x40
    s3_server.client().put_object(Bucket=bucket, Key=stored.artefact_key, Body=bytes(damaged))
    assert store.checksum(stored) != backup.manifest.sha256
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(S3Error, match="does not match its manifest .* take the backup from another tier"):
        store.download(stored, out)
    assert not list(out.iterdir()), "no damaged file left behind"


def test_object_lock_retention_is_set(s3_server, tmp_path):
    bucket = s3_server.bucket("locked-backups", object_lock=True)
    backup = synthetic(tmp_path, 4000)
    tier3(s3_server, bucket, object_lock_mode="GOVERNANCE", object_lock_days=7,
          storage_class="STANDARD_IA").ship(backup)
    head = s3_server.client().head_object(Bucket=bucket, Key=f"pgharbor/db1/{backup.artefact.name}")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert timedelta(days=6) < until - datetime.now(timezone.utc) <= timedelta(days=7)
    assert head.get("StorageClass") == "STANDARD_IA"


@pytest.mark.parametrize("values, message", [
    ({}, r"tier3.bucket is required"),
    ({"bucket": "b", "prefix": "x"}, r"tier3.prefix must end with '/'"),
    ({"bucket": "b", "object_lock_mode": "STRICT", "object_lock_days": 1}, r"object_lock_mode must be GOVERNANCE"),
    ({"bucket": "b", "object_lock_mode": "GOVERNANCE"}, r"set object_lock_mode and object_lock_days together"),
    ({"bucket": "b", "part_size_mb": 1}, r"tier3.part_size_mb must be at least 5"),
    ({"bucket": "b", "bukket": "c"}, r"tier3: unknown key\(s\) bukket"),
])
def test_bad_settings_are_named(values, message):
    with pytest.raises(S3Error, match=message):
        S3Settings.from_dict(values, "tier3")


def test_the_backup_server_watches_each_hosts_bucket(s3_server, bucket, tmp_path):
    """pgharbor-backup-server status lists tier 3 of each DB host with its own key and writes its
    gauges beside tier 2's; a bucket it cannot read and a newest backup past the RPO turn it red, each
    naming its setting; --tier tier2 does not touch the bucket."""
    (tmp_path / "t1").mkdir()
    now = datetime.now(timezone.utc)
    shipped = [synthetic(tmp_path / "t1", 2000, now - timedelta(hours=hours)) for hours in (5, 3)]
    for backup in shipped:
        tier3(s3_server, bucket).ship(backup)
    (tmp_path / "store").mkdir()
    keys = tmp_path / "tier3-reader.json"
    keys.write_text(json.dumps({"access_key_id": ADMIN["aws_access_key_id"],
                                "secret_access_key": ADMIN["aws_secret_access_key"]}))

    def status(max_age_hours: float, endpoint: str, *args: str):
        config = tmp_path / "backup-server.json"
        config.write_text(json.dumps({"root": str(tmp_path / "store"), "tier3_credentials_file": str(keys), "hosts": {
            "db1": {"retention": {"daily": 7}, "max_age_hours": max_age_hours,
                    "tier3": {"bucket": bucket, "prefix": "pgharbor/db1/", "endpoint_url": endpoint, "region": REGION,
                              "max_attempts": 1, "connect_timeout": 2}}}}))
        gauges = tmp_path / "gauges.prom"
        gauges.unlink(missing_ok=True)
        run = backup_server_cli(config, "status", "--json", "--prometheus", str(gauges), *args)
        return run, json.loads(run.stdout)[0], gauges.read_text()

    run, report, gauges = status(4, s3_server.url, "--tier", "tier3")
    assert run.returncode == 0, run.stderr
    assert report["tier3"]["count"] == 2 and report["tier3"]["newest"] == shipped[-1].id
    assert 'pgharbor_backup_count{host="db1",tier="tier3"} 2\n' in gauges
    assert 'pgharbor_backup_tier_healthy{host="db1",tier="tier3"} 1\n' in gauges
    assert 'tier="tier2"' not in gauges  # only the tier asked for
    age = int(next(line for line in gauges.splitlines()
                   if line.startswith('pgharbor_backup_newest_age_seconds{host="db1",tier="tier3"}')).split()[-1])
    assert 3 * 3600 <= age < 3 * 3600 + 120

    run, report, gauges = status(2, s3_server.url, "--tier", "tier3")
    assert run.returncode == 1
    assert any("3.0 h old, more than 2 h (backup_server_clients[db1].max_age_hours)" in p
               for p in report["problems"]), report["problems"]
    assert 'pgharbor_backup_tier_healthy{host="db1",tier="tier3"} 0\n' in gauges

    nobody = "http://127.0.0.1:9"  # discard: nothing answers
    run, report, gauges = status(4, nobody, "--tier", "tier3")
    assert run.returncode == 1 and not report["healthy"]
    assert report["problems"][0].startswith("tier 3: backup_server_clients[db1].tier3: cannot list"), report["problems"]
    assert 'pgharbor_backup_tier_healthy{host="db1",tier="tier3"} 0\n' in gauges
    assert "pgharbor_backup_count{" not in gauges  # unknown, not 0

    run, report, gauges = status(4, nobody, "--tier", "tier2")
    assert "tier3" not in report and 'tier="tier3"' not in gauges
    assert 'pgharbor_backup_tier_healthy{host="db1",tier="tier2"} 0\n' in gauges  # an empty store
