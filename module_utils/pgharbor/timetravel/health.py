"""The time-travel layer's health: per repository, the newest full,
differential and incremental backups, the archive's age (the RPO now), the
restorable window, the last scheduled run of each backup type, the last
verify and the last drill (with its RTO); plus the server's own archiver
counters. A problem names what is wrong and the fix."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import psycopg

from ..common.atomicfile import replace_file
from .window import RepoState

BACKUP_TYPES = ("full", "diff", "incr")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


class RunLog:
    """The last run of each backup type, verify and drill on each repository, kept as one JSON
    file by the scheduled runs (pgharbor-timetravel backup, verify, drill) and read by status."""

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def record(self, kind: str, repo: int, started: dt.datetime, seconds: float, error: str = "",
               **extra: Any) -> None:
        """kind: a backup type, verify or drill; extra: what else that kind reports (a drill's RTO)."""
        runs = self.read()
        runs[f"{kind}/repo{repo}"] = {"started": _iso(started), "seconds": round(seconds, 1),
                                      "result": "failed" if error else "ok", "error": error, **extra}
        replace_file(self.path, json.dumps(runs, indent=2, sort_keys=True) + "\n", mode=0o640)


def repo_report(state: RepoState, runs: dict[str, dict[str, Any]], max_archive_age: dt.timedelta,
                now: dt.datetime, drill_max_age: dt.timedelta | None = None,
                unarchived_wal: bool | None = None) -> dict[str, Any]:
    """unarchived_wal: whether the server has written WAL after its last archived segment (None: not
    known). The RPO now is the newest archived WAL's age, unless nothing was written since: an idle
    database has nothing to lose, however old its newest archived segment."""
    problems = []
    if state.status != "ok":
        problems.append(f"repo{state.repo} ({state.tier}): pgBackRest says {state.status!r}: see "
                        "docs/TROUBLESHOOTING.md (time travel)")
    if state.newest_of("full") is None:
        problems.append(f"repo{state.repo} ({state.tier}): no full backup: run pgharbor-timetravel backup --type full "
                        "on the DB host, or wait for the full backup timer")
    age = now - state.newest_wal if state.newest_wal else None
    idle = age is not None and unarchived_wal is False
    if age is None or (age > max_archive_age and not idle):
        said = "no WAL archived" if age is None else f"newest WAL archived {age.total_seconds() / 60:.0f} min ago"
        allowed = max_archive_age.total_seconds() / 60
        problems.append(f"repo{state.repo} ({state.tier}): {said}, more than the {allowed:.0f} min allowed "
                        "(pg_timetravel_max_archive_age_minutes): check archiving (pg_stat_archiver, "
                        "the pgBackRest log)")
    repo_runs = {k.split("/")[0]: v for k, v in runs.items() if k.endswith(f"/repo{state.repo}")}
    where = f"repo{state.repo} ({state.tier})"
    for kind, run in sorted(repo_runs.items()):
        if run.get("result") != "failed":
            continue
        if kind == "verify":
            problems.append(f"{where}: the last verify found damage ({run['started']}): {run['error']}: see "
                            "docs/TROUBLESHOOTING.md (time travel), then a full backup to that repository")
        elif kind == "drill":
            problems.append(f"{where}: the last time-travel drill failed ({run['started']}): {run['error']}")
        else:
            problems.append(f"{where}: the last {kind} backup failed ({run['started']}): {run['error']}")
    drilled = repo_runs.get("drill")
    if drill_max_age is not None and drilled and drilled.get("result") == "ok" \
            and now - dt.datetime.fromisoformat(drilled["started"]) > drill_max_age:
        problems.append(f"{where}: the last time-travel drill is from {drilled['started']}, more than "
                        f"{drill_max_age.days} days ago (pg_timetravel_drill_max_age_days): is "
                        "pgharbor-timetravel-drill.timer running? (systemctl list-timers)")
    return {
        "repo": state.repo,
        "tier": state.tier,
        "status": state.status,
        "backups": len(state.backups),
        "bytes": sum(b.size for b in state.backups) + state.wal_bytes,
        "newest": {kind: ({"label": b.label, "stop": _iso(b.stop)} if (b := state.newest_of(kind)) else None)
                   for kind in BACKUP_TYPES},
        "window": {"oldest": _iso(state.oldest), "newest": _iso(state.newest),
                   "days": round((state.newest - state.oldest).total_seconds() / 86400, 2) if state.oldest else 0},
        "archive_age_seconds": round(age.total_seconds()) if age is not None else None,
        "rpo_seconds": 0 if idle else round(age.total_seconds()) if age is not None else None,
        "last_runs": repo_runs,
        "verify": repo_runs.get("verify"),
        "drill": repo_runs.get("drill"),
        "problems": problems,
    }


# A segment's first page starts with the long page header: where the next record goes in a segment
# nothing has been written to yet (SizeOfXLogLongPHD).
_LONG_PAGE_HEADER = 40


def wal_written_since(last_archived_wal: str | None, insert_position: int, segment_size: int) -> bool | None:
    """Whether WAL was written after the end of the last archived segment, from the server's insert
    position (bytes since 0/0); None when the last archived file is not a segment (a timeline's
    .history, a .backup label): then it is not known. A server idle since its last switch inserts right
    after the next segment's header, so it has nothing unarchived."""
    if not last_archived_wal or len(last_archived_wal) != 24:
        return None
    try:
        log, seg = int(last_archived_wal[8:16], 16), int(last_archived_wal[16:24], 16)
    except ValueError:
        return None
    segment_end = (log << 32) + (seg + 1) * segment_size
    return insert_position > segment_end + _LONG_PAGE_HEADER


def archiver_state(db: str) -> dict[str, Any]:
    """pg_stat_archiver's row, and what waits: the finished segments not archived yet (.ready),
    pg_wal's bytes and the free bytes of its filesystem, which a stuck archiver fills; and whether
    WAL was written after the last archived segment (unarchived_wal, see wal_written_since)."""
    try:
        with psycopg.connect(db, connect_timeout=10) as conn:
            cur = conn.execute(
                "SELECT a.*, (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') AS "
                "ready_segments, (SELECT coalesce(sum(size), 0)::bigint FROM pg_ls_waldir()) AS wal_bytes, "
                "current_setting('data_directory') AS data_directory, "
                "pg_current_wal_insert_lsn() - '0/0'::pg_lsn AS insert_position, "
                "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size "
                "FROM pg_stat_archiver a")
            row = dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True))
    except psycopg.Error as exc:
        return {"error": f"cannot read pg_stat_archiver: {exc}".strip()}
    try:
        row["wal_free_bytes"] = shutil.disk_usage(Path(row.pop("data_directory")) / "pg_wal").free
    except OSError:
        row["wal_free_bytes"] = None  # pg_wal is not readable by this user: the figure is left out
    row["unarchived_wal"] = wal_written_since(row.get("last_archived_wal"), int(row.pop("insert_position")),
                                              row.pop("segment_size"))
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in row.items()}


def archiver_problems(archiver: dict[str, Any]) -> list[str]:
    """pg_stat_archiver's row: a failure newer than the last success is a problem."""
    problems: list[str] = []
    failed, archived = archiver.get("last_failed_time"), archiver.get("last_archived_time")
    if failed and (archived is None or failed > archived):
        waiting = ""
        if archiver.get("ready_segments") is not None and archiver.get("wal_free_bytes") is not None:
            waiting = (f" ({archiver['ready_segments']} segments wait, pg_wal holds {archiver['wal_bytes'] >> 20} MiB "
                       f"and its filesystem has {archiver['wal_free_bytes'] >> 20} MiB free: when it fills, "
                       "PostgreSQL stops)")
        problems.append(f"archive_command is failing: {archiver.get('failed_count')} failures, the last for WAL "
                        f"{archiver.get('last_failed_wal')} at {failed}; WAL is kept in pg_wal until it succeeds"
                        f"{waiting}: see the pgBackRest log (pg_timetravel_log_path)")
    return problems


def health(states: list[RepoState], runs: dict[str, dict[str, Any]], max_archive_age: dt.timedelta,
           now: dt.datetime, archiver: dict[str, Any] | None = None,
           drill_max_age: dt.timedelta | None = None) -> dict[str, Any]:
    repos = [repo_report(s, runs, max_archive_age, now, drill_max_age, (archiver or {}).get("unarchived_wal"))
             for s in states]
    problems = [p for r in repos for p in r["problems"]] + archiver_problems(archiver or {})
    return {"repos": repos, "archiver": archiver or {}, "problems": problems, "healthy": not problems,
            "checked": _iso(now)}
