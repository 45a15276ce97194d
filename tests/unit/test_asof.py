"""Which version of each key the rebuild of tier 3 takes for a time."""

from __future__ import annotations

import datetime as dt

from pgharbor.tiers.asof import Version, choose

T0 = dt.datetime(2026, 12, 4, 10, 0, 0, tzinfo=dt.timezone.utc)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def history(key: str, *events: tuple[float, bool]) -> list[Version]:
    """Versions of key, newest first as listing() orders them: (seconds after T0, deleted)."""
    versions = [Version(key, f"{key}-v{i}", at(s), 10 + i, deleted) for i, (s, deleted) in enumerate(events)]
    return sorted(versions, key=lambda v: (v.modified, not v.deleted), reverse=True)


def test_the_version_current_at_the_time_is_taken_and_what_changed_since_is_named():
    versions = {"a": history("a", (0, False), (60, False)),  # overwritten after
                "b": history("b", (0, False)),               # untouched
                "c": history("c", (0, False), (60, True))}   # deleted after
    chosen, summary = choose(versions, at(30))
    assert {k: v.version_id for k, v in chosen.items()} == {"a": "a-v0", "b": "b-v0", "c": "c-v0"}
    assert sorted(summary.changed_since) == ["a", "c"]
    assert summary.newer_only == 0 and summary.deleted_then == 0


def test_a_key_deleted_before_the_time_or_written_after_it_is_left_out():
    versions = {"gone": history("gone", (0, False), (10, True)),
                "later": history("later", (100, False))}
    chosen, summary = choose(versions, at(30))
    assert chosen == {}
    assert summary.deleted_then == 1 and summary.newer_only == 1


def test_a_version_of_the_same_second_counts_only_from_that_second_on():
    # S3 gives times to the second: a version stamped 10:00:05 may have been written at 10:00:05.9.
    versions = {"k": history("k", (0, False), (5, False))}
    assert choose(versions, at(5.5))[0]["k"].version_id == "k-v1"
    assert choose(versions, at(4.999))[0]["k"].version_id == "k-v0"


def test_a_delete_marker_of_the_same_second_as_a_version_keeps_the_data():
    versions = {"k": history("k", (5, False), (5, True))}
    assert choose(versions, at(6))[0]["k"].version_id == "k-v0"
