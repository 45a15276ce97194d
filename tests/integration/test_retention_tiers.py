"""Retention applied to real tiers: a directory and a bucket on the moto
server. A dry run removes nothing and says why; a backup being read is
kept; the newest verified backup survives a policy that keeps nothing else."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

from ansiblerun import run_module
from backuptest import synthetic
from s3server import ADMIN, REGION

from pgharbor.backup.store import Store, reading
from pgharbor.tiers.prune import prune_bucket, prune_store
from pgharbor.tiers.retention import Policy
from pgharbor.tiers.s3 import S3Store
from pgharbor.tiers.s3settings import S3Settings

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def daily(directory, days: int):
    return [synthetic(directory, 1000, NOW - timedelta(days=d)) for d in range(days)]


def test_dry_run_then_real_run_on_a_directory(tmp_path):
    backups = daily(tmp_path, 5)
    store = Store(tmp_path)
    dry = prune_store(store, Policy(daily=2), NOW, dry_run=True)
    assert [d.id for d in dry if not d.keep] == [b.id for b in backups[2:]]
    assert all("outside the policy (2 daily)" in d.reasons[0] for d in dry if not d.keep)
    assert len(store.backups()) == 5
    prune_store(store, Policy(daily=2), NOW, dry_run=False)
    assert [b.id for b in store.backups()] == [backups[1].id, backups[0].id]
    assert not backups[4].artefact.exists() and not backups[4].manifest_path.exists()


def test_backup_being_read_is_not_removed(tmp_path):
    backups = daily(tmp_path, 3)
    store = Store(tmp_path)
    oldest = backups[-1]
    with reading(oldest):
        decisions = {d.id: d for d in prune_store(store, Policy(daily=1), NOW, dry_run=False)}
    assert decisions[oldest.id].keep and decisions[oldest.id].reasons == ["being read by a restore or a verification"]
    assert oldest.artefact.exists() and not backups[1].artefact.exists()


def test_reader_arriving_during_removal_is_safe(tmp_path):
    """A reader holds the artefact between the decision and the removal."""
    backups = daily(tmp_path, 2)
    store = Store(tmp_path)
    held = threading.Event()
    release = threading.Event()

    def reader():
        with reading(backups[1]):
            held.set()
            release.wait(5)

    t = threading.Thread(target=reader)
    t.start()
    held.wait(5)
    try:
        store_in_use = store.in_use(backups[1])
        decisions = {d.id: d for d in prune_store(store, Policy(daily=1), NOW, dry_run=False)}
    finally:
        release.set()
        t.join()
    assert store_in_use and decisions[backups[1].id].keep and backups[1].artefact.exists()


def test_newest_verified_survives(tmp_path):
    backups = daily(tmp_path, 4)
    store = Store(tmp_path)
    store.record_verification({"backup": backups[2].id, "ok": True, "level": "restore"})
    store.record_verification({"backup": backups[1].id, "ok": False, "level": "restore"})
    prune_store(store, Policy(max_age_days=0.5), NOW, dry_run=False)
    assert sorted(b.id for b in store.backups()) == sorted([backups[0].id, backups[2].id])


def test_bucket_retention(s3_server, tmp_path):
    bucket = s3_server.bucket("retention")
    settings = S3Settings(bucket=bucket, prefix="db1/", endpoint_url=s3_server.url, region=REGION,
                          access_key_id=ADMIN["aws_access_key_id"], secret_access_key=ADMIN["aws_secret_access_key"])
    tier3 = S3Store(settings)
    backups = daily(tmp_path, 4)
    for b in backups:
        tier3.ship(b)
    dry = prune_bucket(tier3, Policy(daily=2), NOW, dry_run=True)
    assert len(tier3.backups()) == 4 and [d.keep for d in dry] == [True, True, False, False]
    prune_bucket(tier3, Policy(daily=2), NOW, dry_run=False)
    assert [b.id for b in tier3.backups()] == [backups[1].id, backups[0].id]
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 4 and not any(backups[3].id in k for k in keys)


def test_retention_module_dry_run_then_apply(repo, tmp_path, s3_server):
    """pg_backup_retention through real ansible-playbook: check mode removes
    nothing and says why; a real run removes what it said."""
    tier1 = tmp_path / "tier1"
    tier1.mkdir()
    backups = daily(tier1, 4)
    config = tmp_path / "backup.json"
    config.write_text(json.dumps({"directory": str(tier1), "retention": {"daily": 2}}))
    rc, dry, log = run_module(repo, tmp_path, "pg_backup_retention", {"config": str(config)}, check=True)
    assert rc == 0 and dry["changed"], log
    assert dry["removed"] == [backups[2].id, backups[3].id] and len(Store(tier1).backups()) == 4
    assert dry["decisions"][2]["reasons"] == ["outside the policy (2 daily)"]
    rc, done, log = run_module(repo, tmp_path, "pg_backup_retention", {"config": str(config)})
    assert rc == 0 and done["removed"] == dry["removed"], log
    assert [b.id for b in Store(tier1).backups()] == [backups[1].id, backups[0].id]
    rc, again, log = run_module(repo, tmp_path, "pg_backup_retention", {"config": str(config)})
    assert rc == 0 and not again["changed"] and again["removed"] == []
    # tier 3 needs a policy of its own, and the credentials never show
    bucket = s3_server.bucket("retention-module")
    s3 = {"bucket": bucket, "prefix": "db1/", "endpoint_url": s3_server.url, "region": REGION}
    rc, refused, log = run_module(repo, tmp_path, "pg_backup_retention",
                                  {"tier": "tier3", "s3": s3, "s3_access_key_id": ADMIN["aws_access_key_id"],
                                   "s3_secret_access_key": ADMIN["aws_secret_access_key"]})
    assert rc != 0 and "tier 3 has no policy of its own" in refused["msg"]
    assert ADMIN["aws_secret_access_key"] not in log
