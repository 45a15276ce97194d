"""The timer's run end to end on real parts: a backup of a real database,
shipped to a real sshd (tier 2, restricted key) and the moto S3 endpoint
(tier 3), then tier 1's retention; a tier that is down does not stop the
other, fails the run with the backup kept, and is caught up by the next run;
retention keeps what a tier has not received yet."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from ansiblerun import run_module
from backuptest import cli, keyring_with, settings, write_config
from s3server import ADMIN, REGION
from tcpproxy import TcpProxy

from pgharbor.backup.store import Store
from pgharbor.cli.agent import ShippingFailed, run_backup
from pgharbor.tiers.health import bucket_health, tier_health
from pgharbor.tiers.intake import take_in
from pgharbor.tiers.report import disagreements
from pgharbor.tiers.retention import Policy
from pgharbor.tiers.s3 import S3Store
from pgharbor.tiers.s3settings import S3Settings


@pytest.fixture
def agent(awkward_server, backup_keys, tmp_path, tier2_host, s3_server, request):
    target, dirs = tier2_host
    tier1 = tmp_path / "tier1"
    tier1.mkdir(mode=0o700)
    bucket = s3_server.bucket("cycle-" + request.node.name.removeprefix("test_").replace("_", "-")[:40])
    tier3 = S3Settings(bucket=bucket, prefix="db1/", endpoint_url=s3_server.url, region=REGION,
                       access_key_id=ADMIN["aws_access_key_id"], secret_access_key=ADMIN["aws_secret_access_key"],
                       max_attempts=2, connect_timeout=2)
    s = settings(awkward_server, tier1, keyring_with(tmp_path, backup_keys.escrow), [backup_keys.escrow.fingerprint],
                 tier2=target, tier3=tier3, retention=Policy(hourly=1))
    return s, dirs


def in_tier2(dirs) -> list[str]:
    take_in(dirs["incoming"], dirs["store"], dirs["quarantine"])
    return [b.id for b in Store(dirs["store"]).backups()]


def test_backup_shipped_to_both_tiers_then_retention(agent):
    s, dirs = agent
    first = run_backup(s)
    assert first.shipping == {"tier2": {"shipped": [first.manifest.id], "error": "", "pending": 0},
                              "tier3": {"shipped": [first.manifest.id], "error": "", "pending": 0}}
    second = run_backup(s)
    # hourly=1 and both shipped: tier 1 keeps only the newest
    assert [d["id"] for d in second.retention if not d["keep"]] == [first.manifest.id]
    assert [b.id for b in Store(s.directory).backups()] == [second.manifest.id]
    assert in_tier2(dirs) == [first.manifest.id, second.manifest.id]
    assert [b.id for b in S3Store(s.tier3).backups()] == [first.manifest.id, second.manifest.id]
    status = Store(s.directory).read_status()
    assert status["result"] == "ok" and status["removed"] == [first.manifest.id]


def test_a_tier_down_fails_the_run_but_keeps_everything_and_catches_up(agent, s3_server):
    s, dirs = agent
    with TcpProxy(s3_server.port) as proxy:
        s = replace(s, tier3=replace(s.tier3, endpoint_url=f"http://127.0.0.1:{proxy.port}"))
        proxy.cut()
        with pytest.raises(ShippingFailed, match=rf"backup \S+ taken, but tier3: shipping \S+ to s3://{s.tier3.bucket}/db1/"
                                                 r" at http://127.0.0.1:\d+ failed") as failed:
            run_backup(s)
        taken = failed.value.run.manifest.id
        assert failed.value.run.shipping["tier2"]["shipped"] == [taken]
        with pytest.raises(ShippingFailed):
            run_backup(s)
        # nothing removed: neither backup has reached tier 3
        backups = [b.id for b in Store(s.directory).backups()]
        assert len(backups) == 2 and backups[0] == taken
        status = Store(s.directory).read_status()
        assert status["shipping"]["tier3"]["error"] and status["shipping"]["tier3"]["pending"] == 2
        proxy.restore()
        caught_up = run_backup(s)
    assert caught_up.shipping["tier3"]["shipped"] == [*backups, caught_up.manifest.id]
    direct = replace(s.tier3, endpoint_url=s3_server.url)
    assert [b.id for b in S3Store(direct).backups()] == [*backups, caught_up.manifest.id]
    assert in_tier2(dirs) == [*backups, caught_up.manifest.id]
    assert [b.id for b in Store(s.directory).backups()] == [caught_up.manifest.id]


def test_cli_run_reports_each_tier(agent, tmp_path, s3_server):
    s, _ = agent
    config = write_config(tmp_path / "backup.json", s, tier2=s.tier2.__dict__,
                          tier3={"bucket": s.tier3.bucket, "prefix": "db1/", "endpoint_url": s3_server.url,
                                 "region": REGION},
                          tier3_credentials_file=str(tmp_path / "s3.json"), retention={"hourly": 24})
    (tmp_path / "s3.json").write_text(json.dumps({"access_key_id": ADMIN["aws_access_key_id"],
                                                  "secret_access_key": ADMIN["aws_secret_access_key"]}))
    result = cli(config, "run")
    assert result.returncode == 0, result.stderr
    assert "tier2: shipped appdb-" in result.stdout and "tier3: shipped appdb-" in result.stdout
    # a bad tier setting is named before anything runs
    bad = write_config(tmp_path / "bad.json", s, tier3={"bucket": s.tier3.bucket, "prefix": "no-slash"})
    refused = cli(bad, "run")
    assert refused.returncode != 0 and "pg_backup_tier3.prefix must end with '/'" in refused.stderr


def test_reship_what_a_tier_misses(agent, tmp_path, s3_server):
    """A backup lost on tier 3 (removed there by hand) is named by the tier
    comparison and shipped again by pgharbor-backup ship."""
    s, _ = agent
    s = replace(s, retention=None)
    first = run_backup(s).manifest
    second = run_backup(s).manifest
    third = run_backup(s).manifest
    bucket = S3Store(s.tier3)
    [lost] = [b for b in bucket.backups() if b.id == second.id]
    bucket.delete(lost)
    reports = {"tier1": tier_health(s.directory, 2, datetime.now(timezone.utc)),
               "tier3": bucket_health(bucket, 2, datetime.now(timezone.utc), "max_age_hours")}
    problems, missing = disagreements(reports, datetime.now(timezone.utc))
    assert missing == {"tier3": [second.id]}
    assert f"pgharbor-backup ship --tier tier3 --backup {second.id}" in problems[0]
    config = write_config(tmp_path / "backup.json", s, tier3={"bucket": s.tier3.bucket, "prefix": s.tier3.prefix,
                                                              "endpoint_url": s3_server.url, "region": REGION},
                          tier3_credentials_file=str(tmp_path / "s3.json"))
    (tmp_path / "s3.json").write_text('{"access_key_id": "a", "secret_access_key": "b"}')
    shipped = cli(config, "ship", "--tier", "tier3", "--backup", second.id)
    assert shipped.returncode == 0 and f"tier3: shipped {second.id}" in shipped.stdout, shipped.stderr
    assert [b.id for b in bucket.backups()] == [first.id, second.id, third.id]
    unknown = cli(config, "ship", "--tier", "tier3", "--backup", "appdb-20000101T000000Z")
    assert unknown.returncode == 2 and "not in" in unknown.stderr


def test_info_and_report_modules(agent, repo, tmp_path, s3_server):
    """pg_backup_info per tier and pg_backup_report through real
    ansible-playbook, as status.yml runs them."""
    s, _ = agent
    run_backup(s)
    config = write_config(tmp_path / "backup.json", s, max_age_hours=1)
    rc, tier1, log = run_module(repo, tmp_path, "pg_backup_info", {"config": str(config)})
    assert rc == 0 and tier1["healthy"] and tier1["health"]["count"] == 1, log
    s3 = {"bucket": s.tier3.bucket, "prefix": s.tier3.prefix, "endpoint_url": s3_server.url, "region": REGION}
    creds = {"s3_access_key_id": ADMIN["aws_access_key_id"], "s3_secret_access_key": ADMIN["aws_secret_access_key"]}
    rc, tier3, log = run_module(repo, tmp_path, "pg_backup_info", {"tier": "tier3", "s3": s3, **creds})
    assert rc == 0 and tier3["health"]["newest"] == tier1["health"]["newest"], log
    assert ADMIN["aws_secret_access_key"] not in log
    rc, out, log = run_module(repo, tmp_path, "pg_backup_report",
                              {"host": "db1", "health": {"tier1": tier1["health"], "tier3": tier3["health"]}})
    assert rc == 0 and out["report"]["healthy"] and out["table"][0] == "db1: ok", log
    assert 'pgharbor_backup_count{host="db1",tier="tier3"} 1' in out["prometheus"]
    # an unreachable bucket is a failure naming the tier
    rc, down, log = run_module(repo, tmp_path, "pg_backup_info",
                               {"tier": "tier3", "s3": {**s3, "endpoint_url": "http://127.0.0.1:1", "max_attempts": 1},
                                **creds})
    assert rc != 0 and down["msg"].startswith("tier3: cannot list s3://"), log


def test_verify_and_restore_fall_back_to_tier3(agent, repo, tmp_path, s3_server, backup_keys):
    """A backup tier 1 no longer holds comes from the bucket; a tier that is
    down is named, and the next one is tried."""
    s, _ = agent
    gone = run_backup(s).manifest
    run_backup(s)
    # tier 1's retention (hourly: 1) has removed it; tiers 2 and 3 hold it
    assert gone.id not in [b.id for b in Store(s.directory).backups()]
    config = write_config(tmp_path / "backup.json", s)
    s3 = {"bucket": s.tier3.bucket, "prefix": s.tier3.prefix, "endpoint_url": s3_server.url, "region": REGION}
    creds = {"s3_access_key_id": ADMIN["aws_access_key_id"], "s3_secret_access_key": ADMIN["aws_secret_access_key"]}
    args = {"config": str(config), "backup": gone.id, "level": "readable", "private_key": backup_keys.escrow.secret,
            "tiers": ["tier1", "tier3"], "s3": s3, **creds}
    rc, out, log = run_module(repo, tmp_path, "pg_dump_verify", args)
    assert rc == 0 and out["source_tier"] == "tier3", log
    assert out["skipped_tiers"][0].startswith(f"tier1: no complete backup {gone.id!r}")
    assert out["verification"]["passed"] == ["checksum", "readable"]
    assert not (Path(s.directory) / ".fetched").exists(), "the downloaded copy is removed"
    # pg_backup_restore finds it the same way (check mode: found, nothing restored)
    restore_args = {k: v for k, v in args.items() if k != "level"}
    rc, would, log = run_module(repo, tmp_path, "pg_backup_restore", {**restore_args, "database": "appdb",
                                                                      "server": s.conninfo}, check=True)
    assert rc == 0 and would["changed"] and would["source_tier"] == "tier3" and would["backup"] == gone.id, log
    # the newest is still on tier 1: no download
    rc, near, log = run_module(repo, tmp_path, "pg_dump_verify", {**args, "backup": "latest"})
    assert rc == 0 and near["source_tier"] == "tier1" and near["skipped_tiers"] == [], log
    # the bucket down, the backup nowhere else
    down = {**args, "s3": {**s3, "endpoint_url": "http://127.0.0.1:1", "max_attempts": 1}}
    rc, failed, log = run_module(repo, tmp_path, "pg_dump_verify", down)
    assert rc != 0 and f"backup '{gone.id}' is in no tier that answered: tier1: " in failed["msg"], log
    assert "tier3: cannot list s3://" in failed["msg"]
    assert ADMIN["aws_secret_access_key"] not in log and "PRIVATE KEY" not in log
