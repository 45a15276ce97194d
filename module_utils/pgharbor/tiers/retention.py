"""Which backups a tier keeps: grandfather-father-son buckets and/or an age
limit, decided from each backup's own start time (its manifest), never from
file dates, which a copy to another tier changes.

A backup is kept when any rule keeps it. Protections hold whatever the
policy says: the newest backup, the newest verified backup, and whatever
the tier holds on to (a backup a restore is reading right now, one that is
not shipped to the next tier yet).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..errors import PgharborError

# Buckets are calendar periods in UTC (manifests carry UTC times); weeks are ISO weeks.
BUCKETS: dict[str, Callable[[datetime], tuple]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar())[:2],
    "monthly": lambda t: (t.year, t.month),
}


class PolicyError(PgharborError, ValueError):
    pass


@dataclass(frozen=True)
class Policy:
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    max_age_days: float | None = None

    @classmethod
    def from_dict(cls, values: dict, setting: str) -> Policy:
        """values as the inventory writes them; setting names the inventory
        variable in messages."""
        unknown = sorted(set(values) - {*BUCKETS, "max_age_days"})
        if unknown:
            raise PolicyError(f"{setting}: unknown key(s) {', '.join(unknown)}; use hourly, daily, weekly, monthly "
                              "and/or max_age_days")
        for name in BUCKETS:
            count = values.get(name, 0)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise PolicyError(f"{setting}.{name} must be a whole number of backups ≥ 0, not {count!r}")
        age = values.get("max_age_days")
        if age is not None and (isinstance(age, bool) or not isinstance(age, (int, float)) or age <= 0):
            raise PolicyError(f"{setting}.max_age_days must be a number of days > 0, not {age!r}")
        policy = cls(**{name: values.get(name, 0) for name in BUCKETS}, max_age_days=age)
        if not any(getattr(policy, name) for name in BUCKETS) and age is None:
            raise PolicyError(f"{setting} keeps nothing: set at least one of hourly, daily, weekly, monthly or "
                              "max_age_days (for example {hourly: 24, daily: 7, weekly: 4, monthly: 6})")
        return policy

    def describe(self) -> str:
        parts = [f"{getattr(self, name)} {name}" for name in BUCKETS if getattr(self, name)]
        if self.max_age_days is not None:
            parts.append(f"everything younger than {self.max_age_days:g} days")
        return ", ".join(parts)


@dataclass(frozen=True)
class Candidate:
    id: str
    started: datetime
    verified: bool = False
    # reasons that keep this backup whatever the policy says (being read, not shipped yet)
    holds: tuple[str, ...] = ()


@dataclass
class Decision:
    id: str
    started: datetime
    keep: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"id": self.id, "started": self.started.isoformat(), "keep": self.keep, "reasons": self.reasons}


def decide(candidates: Iterable[Candidate], policy: Policy, now: datetime) -> list[Decision]:
    """One decision per candidate, newest first, each with its reasons."""
    newest_first: Sequence[Candidate] = sorted(candidates, key=lambda c: (c.started, c.id), reverse=True)
    reasons: dict[str, list[str]] = {c.id: [] for c in newest_first}
    if newest_first:
        reasons[newest_first[0].id].append("newest backup")
    verified = next((c for c in newest_first if c.verified), None)
    if verified is not None:
        reasons[verified.id].append("newest verified backup")
    for c in newest_first:
        reasons[c.id].extend(c.holds)
    for name, bucket_of in BUCKETS.items():
        wanted = getattr(policy, name)
        seen: set[tuple] = set()
        for c in newest_first:
            if len(seen) == wanted:
                break
            bucket = bucket_of(c.started)
            if bucket not in seen:
                seen.add(bucket)
                reasons[c.id].append(f"{name} {len(seen)}/{wanted}")
    if policy.max_age_days is not None:
        limit = now - timedelta(days=policy.max_age_days)
        for c in newest_first:
            if c.started >= limit:
                reasons[c.id].append(f"younger than {policy.max_age_days:g} days")
    decisions = []
    for c in newest_first:
        why = reasons[c.id]
        decisions.append(Decision(c.id, c.started, keep=bool(why),
                                  reasons=why or [f"outside the policy ({policy.describe()})"]))
    return decisions
