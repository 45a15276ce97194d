"""The time-travel layer's pure logic: pgbackrest verify's text read
properly (its exit status says nothing), each repository's window, and the
choice of the repository a target is restored from. The texts are what
pgBackRest 2.45 printed in the integration tests."""

from __future__ import annotations

import datetime as dt

import pytest

from pgharbor.timetravel.health import repo_report, wal_written_since
from pgharbor.timetravel.pastcopy import PastCopyError, Target
from pgharbor.timetravel.preview import _in_order
from pgharbor.timetravel.verify import parse_verify
from pgharbor.timetravel.window import BackupSet, RepoState, WindowError, check_target

SOUND = """stanza: main
status: ok
  archiveId: 15-1, total WAL checked: 5, total valid WAL: 5
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
  backup: 20261204-040828F, status: valid, total files checked: 964, total valid files: 964
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
"""
DAMAGED = """stanza: main
status: error
  archiveId: 15-1, total WAL checked: 5, total valid WAL: 5
    missing: 0, checksum invalid: 0, size invalid: 0, other: 0
  backup: 20261204-040828F, status: invalid, total files checked: 964, total valid files: 963
    missing: 0, checksum invalid: 1, size invalid: 0, other: 0
"""
T0 = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


def test_a_sound_repository_verifies():
    report = parse_verify(1, SOUND)
    assert report.ok and report.problems == []
    assert [(i.kind, i.name, i.checked, i.valid) for i in report.items] == [
        ("archive", "15-1", 5, 5), ("backup", "20261204-040828F", 964, 964)]


def test_a_damaged_file_fails_verification_and_is_named():
    report = parse_verify(1, DAMAGED)
    assert not report.ok
    assert report.problems == ["backup 20261204-040828F: 963 of 964 valid (1 checksum invalid)"]


@pytest.mark.parametrize("text", ["", "stanza: main\n", SOUND.replace("status: ok", "status: error")],
                         ids=["nothing", "no status", "status error"])
def test_anything_but_an_explicit_ok_fails(text):
    assert not parse_verify(2, text).ok


def repo(number: int, stops: list[int], newest_wal_hours: float | None) -> RepoState:
    state = RepoState(number, "ok", [BackupSet(f"b{h}", "full", T0 + dt.timedelta(hours=h - 1),
                                               T0 + dt.timedelta(hours=h), 1, 1, False) for h in stops])
    state.newest_wal = T0 + dt.timedelta(hours=newest_wal_hours) if newest_wal_hours is not None else None
    return state


def test_the_nearest_repository_that_covers_the_target_is_chosen():
    near, far = repo(1, [10], 20), repo(2, [2], 20)
    assert check_target([near, far], T0 + dt.timedelta(hours=12)).repo == 1
    # Older than repo1's oldest backup: only the bucket reaches back that far.
    assert check_target([near, far], T0 + dt.timedelta(hours=5)).repo == 2


def test_a_target_outside_every_window_names_each_window():
    with pytest.raises(WindowError) as refused:
        check_target([repo(1, [10], 20), repo(2, [], None)], T0 + dt.timedelta(hours=1))
    assert "tier1 (repo1): 2026-12-01 10:00:00 to 2026-12-01 20:00:01 UTC" in str(refused.value)
    assert "tier3 (repo2): no backup yet" in str(refused.value)


def test_the_window_ends_with_the_newest_wal_or_the_newest_backup():
    assert repo(1, [10, 15], 12).newest == T0 + dt.timedelta(hours=15)
    assert repo(1, [10], None).newest == T0 + dt.timedelta(hours=10)
    assert repo(1, [10], 30).newest == T0 + dt.timedelta(hours=30, seconds=1)


def test_targets_are_read_with_their_zone():
    assert Target.parse("latest").kind == "latest" and Target.parse(None).kind == "latest"
    assert Target.parse(name="before-cutover").options() == ["--type=name", "--target=before-cutover",
                                                             "--target-action=pause"]
    assert Target.parse("2026-12-04T10:03:00Z").time == dt.datetime(2026, 12, 4, 10, 3, tzinfo=dt.timezone.utc)
    with pytest.raises(PastCopyError, match="not both"):
        Target.parse("latest", "before-cutover")


def test_the_preview_lists_keys_by_their_numbers_not_as_text():
    assert _in_order({"10", "9", "1", "2"}) == ["1", "2", "9", "10"]
    assert _in_order({"(2,b)", "(10,a)", "(2,a)"}) == ["(2,a)", "(2,b)", "(10,a)"]
    assert _in_order({"b", "a10", "a9"}) == ["a9", "a10", "b"]


@pytest.mark.parametrize("unarchived_wal, rpo, alarm", [(False, 0, False), (True, 7200, True), (None, 7200, True)])
def test_an_idle_database_is_no_archiving_alarm(unarchived_wal, rpo, alarm):
    """Its newest archived segment is two hours old. Nothing written since: nothing to lose, RPO 0. Written
    since, or not known: the age is the RPO, over the limit."""
    now = dt.datetime(2026, 12, 7, 12, tzinfo=dt.timezone.utc)
    full = BackupSet("20261207-010000F", "full", now - dt.timedelta(hours=11), now - dt.timedelta(hours=10), 1, 1,
                     False)
    state = RepoState(1, "ok", [full], newest_wal=now - dt.timedelta(hours=2), wal_bytes=0)
    report = repo_report(state, {}, dt.timedelta(minutes=5), now, unarchived_wal=unarchived_wal)
    assert report["archive_age_seconds"] == 7200 and report["rpo_seconds"] == rpo
    assert [p for p in report["problems"] if "pg_timetravel_max_archive_age_minutes" in p] == (
        ["repo1 (tier1): newest WAL archived 120 min ago, more than the 5 min allowed "
         "(pg_timetravel_max_archive_age_minutes): check archiving (pg_stat_archiver, the pgBackRest log)"]
        if alarm else [])


MB16 = 16 << 20


@pytest.mark.parametrize("last, position, written", [
    ("000000010000000000000002", 3 * MB16 + 40, False),          # idle since the switch after segment 2
    ("000000010000000000000002", 3 * MB16 + 0x90, True),         # a record in segment 3
    ("000000010000000000000002", 2 * MB16 + 500, False),         # before the archived one ends
    ("0000000200000001000000FF", (1 << 32) + 256 * MB16 + 40, False),  # the last segment of a 4 GB "log"
    ("0000000200000001000000FF", (2 << 32) + 41, True),
    ("00000002.history", 3 * MB16, None),                        # not a segment: not known
    ("000000010000000000000003.00000028.backup", 4 * MB16, None),
    (None, MB16, None),
])
def test_wal_written_since_the_last_archived_segment(last, position, written):
    assert wal_written_since(last, position, MB16) is written
