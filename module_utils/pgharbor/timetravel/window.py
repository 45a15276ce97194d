"""What each repository can restore: its backups and its restorable window,
from `pgbackrest info` and the times of the archived WAL files.

The window of a repository runs from the end of its oldest backup (the first
moment a restore can be consistent) to the newest WAL segment it holds (the
last moment whose commits it has). Its age is the RPO now: a restore from
that repository loses what was committed after it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from ..errors import PgharborError
from .engine import Pgbackrest

# pgBackRest's repositories and the tiers they are: repo1 on this host's disk (the backup
# server pulls copies of it: tier 2), repo2 in the bucket.
REPO_TIERS = {1: "tier1", 2: "tier3"}
TIER_REPOS = {tier: repo for repo, tier in REPO_TIERS.items()}
WAL_SEGMENT = re.compile(r"(?:^|/)[0-9A-F]{24}-[0-9a-f]{40}(?:\.[a-z0-9]+)?$")


class WindowError(PgharborError, ValueError):
    pass


def utc(seconds: int | float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc)


@dataclass(frozen=True)
class BackupSet:
    label: str
    type: str  # full, diff, incr
    start: dt.datetime
    stop: dt.datetime
    size: int  # bytes in the repository
    database_size: int  # bytes the restored cluster takes
    error: bool  # pgBackRest found a page checksum error while copying


@dataclass
class RepoState:
    repo: int
    status: str  # pgBackRest's word for the repository: ok, or what is wrong
    backups: list[BackupSet] = field(default_factory=list)
    archive_min: str | None = None
    archive_max: str | None = None
    newest_wal: dt.datetime | None = None
    wal_files: int = 0
    wal_bytes: int = 0

    @property
    def tier(self) -> str:
        return REPO_TIERS.get(self.repo, f"repo{self.repo}")

    @property
    def oldest(self) -> dt.datetime | None:
        return min((b.stop for b in self.backups), default=None)

    @property
    def newest(self) -> dt.datetime | None:
        stops = [b.stop for b in self.backups]
        if not stops:
            return None
        # repo-ls gives whole seconds: the file was written within the second after.
        pushed = [self.newest_wal + dt.timedelta(seconds=1)] if self.newest_wal else []
        return max([*stops, *pushed])

    def newest_of(self, kind: str) -> BackupSet | None:
        return max((b for b in self.backups if b.type == kind), key=lambda b: b.stop, default=None)

    def window_text(self) -> str:
        if self.oldest is None:
            return f"{self.tier} (repo{self.repo}): no backup yet"
        return f"{self.tier} (repo{self.repo}): {self.oldest:%Y-%m-%d %H:%M:%S} to {self.newest:%Y-%m-%d %H:%M:%S} UTC"

    def covers(self, target: dt.datetime) -> bool:
        return self.oldest is not None and self.oldest <= target <= self.newest


def repo_states(engine: Pgbackrest) -> list[RepoState]:
    info = engine.info()
    current = {db["repo-key"]: db["id"] for db in info.get("db", [])}  # the cluster's history id per repo
    states = {r["key"]: RepoState(r["key"], r["status"]["message"]) for r in info.get("repo", [])}
    for b in info.get("backup", []):
        key = b["database"]["repo-key"]
        if key in states and b["database"]["id"] == current.get(key):
            states[key].backups.append(BackupSet(
                b["label"], b["type"], utc(b["timestamp"]["start"]), utc(b["timestamp"]["stop"]),
                b["info"]["repository"]["size"], b["info"]["size"], bool(b.get("error"))))
    for a in info.get("archive", []):
        key = a["database"]["repo-key"]
        if key not in states or a["database"]["id"] != current.get(key) or not a.get("max"):
            continue
        state = states[key]
        state.archive_min, state.archive_max = a["min"], a["max"]
        segments = [f for name, f in engine.files(key, f"archive/{engine.stanza}/{a['id']}").items()
                    if WAL_SEGMENT.search(name)]
        state.wal_files = len(segments)
        state.wal_bytes = sum(f["size"] for f in segments)
        state.newest_wal = max((utc(f["time"]) for f in segments), default=None)
    for state in states.values():
        state.backups.sort(key=lambda b: b.stop)
    return [states[k] for k in sorted(states)]


def check_target(states: list[RepoState], target: dt.datetime, repo: int | None = None) -> RepoState:
    """The repository to restore target from: the one asked for, or the nearest (lowest
    number) whose window covers it. Outside every window: refused, naming each window."""
    candidates = [s for s in states if repo is None or s.repo == repo]
    for state in candidates:
        if state.covers(target):
            return state
    windows = "; ".join(s.window_text() for s in candidates) or "no repository configured"
    where = f"repo{repo}" if repo is not None else "any repository"
    raise WindowError(
        f"{target:%Y-%m-%d %H:%M:%S} UTC is outside the restorable window of {where}: {windows}. Choose a time "
        "inside a window (time_travel_target), or another tier")
