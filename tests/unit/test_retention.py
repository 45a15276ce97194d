"""Retention decisions: grandfather-father-son buckets, an age limit, and
the protections no policy can override."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pgharbor.tiers.retention import Candidate, Policy, PolicyError, decide

NOW = datetime(2026, 12, 2, 12, 30, tzinfo=timezone.utc)


def hourly_backups(hours: int, **flags) -> list[Candidate]:
    """One backup at 10 past every hour, for the last `hours` hours."""
    first = NOW.replace(minute=10) - timedelta(hours=hours - 1)
    return [Candidate(f"b{i:03d}", first + timedelta(hours=i), **flags) for i in range(hours)]


def kept(decisions) -> list[str]:
    return sorted(d.id for d in decisions if d.keep)


def test_hourly_keeps_the_newest_n_hours():
    backups = hourly_backups(10)
    decisions = decide(backups, Policy(hourly=3), NOW)
    assert kept(decisions) == ["b007", "b008", "b009"]
    removed = [d for d in decisions if not d.keep]
    assert len(removed) == 7 and all("outside the policy (3 hourly)" in d.reasons[0] for d in removed)


def test_two_backups_in_one_hour_count_once_and_the_newer_one_stays():
    backups = hourly_backups(3) + [Candidate("extra", NOW.replace(minute=20))]
    assert kept(decide(backups, Policy(hourly=2), NOW)) == ["b001", "extra"]


def test_daily_weekly_monthly_pick_one_per_period():
    # Every day at 03:00 for 70 days, newest on 2026-12-02.
    days = [Candidate(f"d{i:02d}", datetime(2026, 12, 2, 3, tzinfo=timezone.utc) - timedelta(days=i))
            for i in range(70)]
    decisions = decide(days, Policy(daily=3, weekly=2, monthly=3), NOW)
    by_id = {d.id: d for d in decisions}
    # daily: 2 Dec, 1 Dec, 30 Nov
    assert all(any(r.startswith("daily") for r in by_id[i].reasons) for i in ("d00", "d01", "d02"))
    # weekly: the newest of ISO week 49 (Wed 2 Dec) and of week 48 (Sun 29 Nov = d03)
    assert [i for i, d in by_id.items() if any(r.startswith("weekly") for r in d.reasons)] == ["d00", "d03"]
    # monthly: newest of December (2 Dec), November (30 Nov = d02), October (31 Oct = d32)
    assert [i for i, d in by_id.items() if any(r.startswith("monthly") for r in d.reasons)] == ["d00", "d02", "d32"]
    assert kept(decisions) == ["d00", "d01", "d02", "d03", "d32"]


def test_age_limit_keeps_what_is_younger():
    backups = hourly_backups(72)
    decisions = decide(backups, Policy(max_age_days=1), NOW)
    young = [b.id for b in backups if NOW - b.started <= timedelta(days=1)]
    assert kept(decisions) == sorted(young) and len(young) == 24


def test_rules_add_up():
    backups = hourly_backups(72)
    only_hourly = set(kept(decide(backups, Policy(hourly=2), NOW)))
    only_daily = set(kept(decide(backups, Policy(daily=3), NOW)))
    both = set(kept(decide(backups, Policy(hourly=2, daily=3), NOW)))
    assert both == only_hourly | only_daily and len(both) == 4


def test_newest_verified_backup_survives_any_policy():
    backups = hourly_backups(10)
    backups[2] = Candidate(backups[2].id, backups[2].started, verified=True)
    decisions = {d.id: d for d in decide(backups, Policy(hourly=1), NOW)}
    assert decisions["b002"].keep and decisions["b002"].reasons == ["newest verified backup"]
    assert decisions["b009"].keep and "newest backup" in decisions["b009"].reasons
    assert kept(decisions.values()) == ["b002", "b009"]


def test_backup_being_read_is_kept():
    backups = hourly_backups(5)
    backups[0] = Candidate(backups[0].id, backups[0].started, holds=("being read",))
    decisions = {d.id: d for d in decide(backups, Policy(hourly=1), NOW)}
    assert decisions["b000"].keep and decisions["b000"].reasons == ["being read"]
    assert kept(decisions.values()) == ["b000", "b004"]


def test_old_only_backups_still_keep_the_newest():
    old = [Candidate("old1", NOW - timedelta(days=400)), Candidate("old2", NOW - timedelta(days=300))]
    assert kept(decide(old, Policy(max_age_days=30), NOW)) == ["old2"]


def test_empty_tier():
    assert decide([], Policy(daily=7), NOW) == []


@pytest.mark.parametrize("values, message", [
    ({}, r"tier2_retention keeps nothing: set at least one of"),
    ({"daily": 0}, r"tier2_retention keeps nothing"),
    ({"daily": -1}, r"tier2_retention.daily must be a whole number"),
    ({"daily": "7"}, r"tier2_retention.daily must be a whole number"),
    ({"daily": True}, r"tier2_retention.daily must be a whole number"),
    ({"max_age_days": 0}, r"tier2_retention.max_age_days must be a number of days > 0"),
    ({"yearly": 3}, r"tier2_retention: unknown key\(s\) yearly"),
])
def test_bad_policies_are_named(values, message):
    with pytest.raises(PolicyError, match=message):
        Policy.from_dict(values, "tier2_retention")


def test_policy_from_inventory():
    policy = Policy.from_dict({"hourly": 24, "daily": 7, "max_age_days": 2.5}, "x")
    assert policy == Policy(hourly=24, daily=7, max_age_days=2.5)
    assert policy.describe() == "24 hourly, 7 daily, everything younger than 2.5 days"
