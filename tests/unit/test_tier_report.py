"""Comparing the tiers of one DB host: agreement, RPO/RTO, the metrics."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from pgharbor.tiers.report import disagreements, host_report, prometheus, table, timetravel_report
from pgharbor.timetravel.health import health
from pgharbor.timetravel.window import BackupSet, RepoState

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


# The time-travel layer, from the layer's own health() over repository states, as the DB host reports it.
def _layer(drill_result: str = "ok", failed_archiver: bool = False) -> dict:
    def state(repo: int, wal_age: int) -> RepoState:
        full = BackupSet(f"20261201-010000F-{repo}", "full", datetime(2026, 12, 1, 1, tzinfo=timezone.utc),
                         datetime(2026, 12, 1, 1, 5, tzinfo=timezone.utc), 1000, 5000, False)
        incr = BackupSet(f"20261202-070000I-{repo}", "incr", datetime(2026, 12, 2, 7, tzinfo=timezone.utc),
                         datetime(2026, 12, 2, 7, 1, tzinfo=timezone.utc), 100, 5000, False)
        return RepoState(repo, "ok", [full, incr], newest_wal=NOW - timedelta(seconds=wal_age), wal_bytes=50)

    runs = {"drill/repo2": {"started": "2026-12-01T03:30:00+00:00", "seconds": 40.0, "result": drill_result,
                            "error": "" if drill_result == "ok" else "the past copy lacks marker 7",
                            "rto_seconds": 31.5},
            "verify/repo1": {"started": "2026-12-02T03:00:00+00:00", "seconds": 5.0, "result": "ok", "error": ""}}
    archiver = {"archived_count": 90, "failed_count": 3 if failed_archiver else 0,
                "last_archived_time": "2026-12-02T11:59:00+00:00",
                "last_failed_time": "2026-12-02T11:59:30+00:00" if failed_archiver else None,
                "last_failed_wal": "00000001000000000000005A" if failed_archiver else None,
                "ready_segments": 40 if failed_archiver else 0, "wal_bytes": 41 << 24, "wal_free_bytes": 900 << 20}
    return health([state(1, 30), state(2, 90)], runs, timedelta(minutes=5), NOW, archiver, timedelta(days=35))


def samples(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_time_travel_per_tier_in_the_report_the_table_and_the_gauges():
    snapshots = {"snapshots": 12, "oldest": "20261201T020000Z", "newest": "20261202T115500Z",
                 "newest_age_seconds": 300.0, "problems": [], "healthy": True}
    layer = timetravel_report(_layer(), snapshots)
    report = host_report("db1", {"tier1": tier(10, 11)}, NOW, layer)
    assert report["healthy"] and list(layer["tiers"]) == ["tier1", "tier2", "tier3"]
    assert layer["tiers"]["tier2"]["window"] == {"oldest": "2026-12-01T02:00:00+00:00",
                                                 "newest": "2026-12-02T11:55:00+00:00"}
    lines = table(report)
    assert "time travel:" in lines and "ok 2026-12-01T03:30:00+00:00 (31.5 s)" in lines

    got = samples(prometheus(report))
    assert got['pgharbor_timetravel_rpo_seconds{host="db1",tier="tier1"}'] == 30
    assert got['pgharbor_timetravel_rpo_seconds{host="db1",tier="tier2"}'] == 300
    assert got['pgharbor_timetravel_rpo_seconds{host="db1",tier="tier3"}'] == 90
    assert got['pgharbor_timetravel_window_oldest_timestamp_seconds{host="db1",tier="tier1"}'] == \
        datetime(2026, 12, 1, 1, 5, tzinfo=timezone.utc).timestamp()
    assert got['pgharbor_timetravel_newest_backup_timestamp_seconds{host="db1",tier="tier3",type="incr"}'] == \
        datetime(2026, 12, 2, 7, 1, tzinfo=timezone.utc).timestamp()
    assert 'pgharbor_timetravel_newest_backup_timestamp_seconds{host="db1",tier="tier1",type="diff"}' not in got
    assert got['pgharbor_timetravel_drill_rto_seconds{host="db1",tier="tier3"}'] == 31.5
    assert got['pgharbor_timetravel_drill_ok{host="db1",tier="tier3"}'] == 1
    assert 'pgharbor_timetravel_drill_ok{host="db1",tier="tier1"}' not in got  # never drilled: no sample
    assert got['pgharbor_timetravel_verify_ok{host="db1",tier="tier1"}'] == 1
    assert got['pgharbor_timetravel_backups{host="db1",tier="tier2"}'] == 12
    assert got['pgharbor_timetravel_archiver_failing{host="db1"}'] == 0
    assert got['pgharbor_timetravel_healthy{host="db1"}'] == 1 and got['pgharbor_backup_healthy{host="db1"}'] == 1


def test_a_failed_drill_a_failing_archiver_or_an_old_snapshot_fail_the_report_by_name():
    stale = {"snapshots": 3, "oldest": "20261201T020000Z", "newest": "20261202T100000Z", "newest_age_seconds": 7200,
             "problems": ["the newest snapshot is 120 min old, over 20 (backup_server_clients[db1].timetravel."
                          "max_age_minutes)"], "healthy": False}
    layer = timetravel_report(_layer("failed", failed_archiver=True), stale)
    report = host_report("db1", {"tier1": tier(10, 11)}, NOW, layer)
    assert not report["healthy"]
    said = " | ".join(report["problems"])
    assert "time travel: repo2 (tier3): the last time-travel drill failed (2026-12-01T03:30:00+00:00): the past " \
           "copy lacks marker 7" in said
    assert "time travel: archive_command is failing: 3 failures" in said
    assert "(40 segments wait, pg_wal holds 656 MiB and its filesystem has 900 MiB free: when it fills, " \
           "PostgreSQL stops)" in said
    assert "time travel tier2: the newest snapshot is 120 min old" in said
    got = samples(prometheus(report))
    assert got['pgharbor_timetravel_drill_ok{host="db1",tier="tier3"}'] == 0
    assert got['pgharbor_timetravel_archiver_failing{host="db1"}'] == 1
    assert got['pgharbor_timetravel_ready_segments{host="db1"}'] == 40
    assert got['pgharbor_timetravel_wal_free_bytes{host="db1"}'] == 900 << 20
    assert got['pgharbor_timetravel_tier_healthy{host="db1",tier="tier2"}'] == 0
    assert got['pgharbor_timetravel_healthy{host="db1"}'] == 0 and got['pgharbor_backup_healthy{host="db1"}'] == 0


def test_an_overdue_drill_is_a_problem_only_once_one_has_passed():
    state = RepoState(1, "ok", newest_wal=NOW)
    old = {"drill/repo1": {"started": "2026-10-01T03:30:00+00:00", "result": "ok", "error": "", "seconds": 1}}
    said = health([state], old, timedelta(minutes=5), NOW, {}, timedelta(days=35))["problems"]
    assert any("the last time-travel drill is from 2026-10-01T03:30:00+00:00, more than 35 days ago" in p
               for p in said)
    fresh = {"drill/repo1": {**old["drill/repo1"], "started": "2026-11-30T03:30:00+00:00"}}
    assert not any("drill" in p for p in health([state], fresh, timedelta(minutes=5), NOW, {},
                                                timedelta(days=35))["problems"])
    assert not any("drill" in p for p in health([state], {}, timedelta(minutes=5), NOW, {},
                                                timedelta(days=35))["problems"])


def test_each_writer_publishes_only_what_it_sees():
    """The gauges' timers: the backup server writes tier 2 of each DB host (with its quarantine) and
    its pulled snapshots, never an archiver it cannot see; one label value that needs escaping stays one."""
    from pgharbor.tiers.report import tier_gauges, timetravel_gauges

    tier2 = dict(tier(10, 11), quarantined=["x.dump.zst.gpg", "x.manifest.json"])
    snapshots = {"snapshots": 4, "oldest": "20261201T020000Z", "newest": "20261202T115500Z",
                 "newest_age_seconds": 300.0, "problems": [], "healthy": True}
    got = samples("\n".join(tier_gauges([("db1", "tier2", tier2), ('d"b2', "tier2", tier(3, 5))])
                            + timetravel_gauges("db1", timetravel_report({}, snapshots))))
    assert got['pgharbor_backup_quarantined{host="db1",tier="tier2"}'] == 2
    assert 'pgharbor_backup_quarantined{host="d\\"b2",tier="tier2"}' not in got  # no quarantine read: no sample
    assert got['pgharbor_backup_tier_healthy{host="d\\"b2",tier="tier2"}'] == 1
    assert got['pgharbor_timetravel_backups{host="db1",tier="tier2"}'] == 4
    assert not [name for name in got if "archiver" in name]
