"""Comparing the tiers of one DB host: agreement, RPO/RTO, the metrics."""

from __future__ import annotations

from datetime import datetime, timezone

from pgharbor.tiers.report import disagreements, host_report, prometheus, table

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


def tier(*hours: int, sha: dict[int, str] | None = None, age: int = 600, problems=()) -> dict:
    backups = [{"id": f"db-20261202T{h:02d}0000Z", "started": f"2026-12-02T{h:02d}:00:00Z", "size": 100,
                "sha256": (sha or {}).get(h, f"sha{h}")} for h in hours]
    return {"count": len(backups), "bytes": 100 * len(backups), "newest": backups[-1]["id"] if backups else None,
            "newest_age_seconds": age, "backups": backups, "problems": list(problems), "healthy": not problems}


def test_tiers_that_agree():
    problems, missing = disagreements({"tier1": tier(8, 9, 10, 11), "tier2": tier(1, 5, 8, 9, 10, 11),
                                       "tier3": tier(9, 10)}, NOW)
    assert problems == [] and missing == {}


def test_a_backup_a_tier_misses_is_named_with_the_command():
    problems, missing = disagreements({"tier1": tier(8, 9, 10, 11), "tier2": tier(8, 10, 11)}, NOW)
    assert missing == {"tier2": ["db-20261202T090000Z"]}
    assert problems == ["tier2 misses 1 backup(s) that tier 1 holds (db-20261202T090000Z): ship them again with: "
                        "pgharbor-backup ship --tier tier2 --backup db-20261202T090000Z"]


def test_in_flight_and_expired_backups_are_not_missing():
    # 11 is newer than tier 3's newest (on its way); 8 is older than its oldest (its retention is shorter)
    problems, missing = disagreements({"tier1": tier(8, 9, 10, 11), "tier3": tier(9, 10)}, NOW)
    assert problems == [] and missing == {}


def test_different_checksums_are_caught():
    problems, _ = disagreements({"tier1": tier(9, 10), "tier3": tier(9, 10, sha={10: "other"})}, NOW)
    assert problems == ["db-20261202T100000Z: sha256 differs between tier1 and tier3: one copy is damaged; "
                        "verify both (pgharbor-backup verify, the restore drill)"]


def test_report_rpo_rto_and_health():
    t1 = {**tier(10, 11, age=300), "last_verification": {"level": "restore", "restore_seconds": 4.5,
                                                          "started": "2026-12-02T03:00:00Z"}}
    report = host_report("db1", {"tier1": t1, "tier2": tier(10, 11, age=420), "tier3": tier(10, age=4000,
                                 problems=["the newest backup is 1.1 h old"])}, NOW)
    assert report["rpo_seconds"] == 300 and report["offsite_rpo_seconds"] == 420 and report["rto_seconds"] == 4.5
    assert not report["healthy"] and report["problems"] == ["tier3: the newest backup is 1.1 h old"]
    text = table(report)
    assert text.splitlines()[0] == "db1: FAILING" and "tier3" in text and "RPO now 5 min" in text
    metrics = prometheus(report)
    assert 'pgharbor_backup_count{host="db1",tier="tier2"} 2' in metrics
    assert 'pgharbor_backup_tier_healthy{host="db1",tier="tier3"} 0' in metrics
    assert 'pgharbor_backup_rto_seconds{host="db1"} 4.5' in metrics
    assert 'pgharbor_backup_healthy{host="db1"} 0' in metrics
    assert all(line.startswith(("# HELP ", "# TYPE ", "pgharbor_")) for line in metrics.splitlines())


def test_checksum_level_drill_is_no_rto():
    t1 = {**tier(10), "last_verification": {"level": "checksum", "restore_seconds": None}}
    assert host_report("db1", {"tier1": t1}, NOW)["rto_seconds"] is None


def test_a_sparser_retention_on_another_tier_is_not_a_miss():
    # tier 2 keeps one backup a day; tier 1 holds the hourly ones in between
    days = {**tier(10, 11), "backups": [
        {"id": "db-20261130T230000Z", "started": "2026-11-30T23:00:00Z", "size": 1, "sha256": "a"},
        {"id": "db-20261201T230000Z", "started": "2026-12-01T23:00:00Z", "size": 1, "sha256": "b"},
        {"id": "db-20261202T110000Z", "started": "2026-12-02T11:00:00Z", "size": 100, "sha256": "sha11"}],
        "retention": {"daily": 7}}
    t1 = tier(9, 10, 11)
    assert disagreements({"tier1": t1, "tier2": days}, NOW) == ([], {})
    # with an hourly policy, the same gap is a miss
    hourly = {**days, "retention": {"hourly": 24}}
    _, missing = disagreements({"tier1": t1, "tier2": hourly}, NOW)
    assert missing == {"tier2": ["db-20261202T090000Z", "db-20261202T100000Z"]}
