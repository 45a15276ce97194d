"""The time-travel drill: proof, on a schedule, that a repository restores to
a point in time, and how long that takes (the RTO evidence).

One drill, against one repository:
1. pgbackrest verify on it, read properly (a damaged file fails the drill);
2. a marker row committed in the server's maintenance database, a pause of
   random length, the target time taken from the server's clock, another
   pause, a second marker: the target falls between two known commits;
3. pgbackrest check: the WAL holding both is archived to every repository;
4. a past copy restored to the target beside the live cluster (pastcopy.py),
   timed from the start of the restore until recovery has paused there;
5. the copy must hold every marker committed before the target, the first
   marker among them, and not the second;
6. the copy is promoted (it never archives) and pg_amcheck checks every
   database in it; then it is dropped, whatever happened.

The live cluster gains two rows per drill in pgharbor_drill.marker (its
maintenance database, never the application's) and nothing else."""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from ..errors import PgharborError
from ..pg.amcheck import amcheck
from .engine import Pgbackrest
from .health import RunLog
from .pastcopy import Target, existing, restore_past
from .verify import verify
from .window import REPO_TIERS, repo_states

MARKERS = "pgharbor_drill.marker"


class DrillError(PgharborError, RuntimeError):
    pass


@dataclass
class Drill:
    repo: int
    tier: str
    started: str
    target: str = ""
    backup: str = ""
    rto_seconds: float | None = None  # restore until paused at the target
    seconds: float = 0.0  # the whole drill
    markers: int = 0  # markers the past copy held, each checked
    result: str = "failed"
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        if self.result == "ok":
            return (f"drill of repo{self.repo} ({self.tier}): ok; restored {self.target} from backup {self.backup} "
                    f"in {self.rto_seconds} s (RTO), {self.markers} markers as they were, pg_amcheck clean")
        return f"drill of repo{self.repo} ({self.tier}): FAILED: {self.error}"


def log_drill(log: RunLog, record: Drill) -> None:
    """The drill in the run log, where status reads the last one per repository and its RTO."""
    log.record("drill", record.repo, dt.datetime.fromisoformat(record.started), record.seconds, record.error,
               rto_seconds=record.rto_seconds, target=record.target, backup=record.backup)


def next_repo(repos: list[int], last: int | None) -> int:
    """The repositories in rotation: the one after the last drilled."""
    if last not in repos:
        return repos[0]
    return repos[(repos.index(last) + 1) % len(repos)]


def _mark(conn: psycopg.Connection) -> int:
    return conn.execute(f"INSERT INTO {MARKERS} DEFAULT VALUES RETURNING id").fetchone()[0]


def write_markers(db: str, pause: tuple[float, float], rng: random.Random) -> tuple[int, dt.datetime, int]:
    """(first marker, target, second marker): each marker committed on its own, the target read
    from the server's clock after the first commit and before the second."""
    with psycopg.connect(db, autocommit=True, connect_timeout=10) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS pgharbor_drill")
        conn.execute(f"CREATE TABLE IF NOT EXISTS {MARKERS} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                     "written timestamptz NOT NULL DEFAULT clock_timestamp())")
        first = _mark(conn)
        time.sleep(rng.uniform(*pause))
        target = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        time.sleep(rng.uniform(*pause))
        return first, target, _mark(conn)


def check_markers(copy_db: str, first: int, second: int, expected: set[int]) -> int:
    with psycopg.connect(copy_db, autocommit=True, connect_timeout=10) as past:
        found = {r[0] for r in past.execute(f"SELECT id FROM {MARKERS}")}
    if first not in found:
        raise DrillError(f"the past copy lacks marker {first}, committed before the target: the repository did not "
                         "bring back a commit it should hold")
    if second in found:
        raise DrillError(f"the past copy holds marker {second}, committed after the target: recovery did not stop at "
                         "the target")
    if found != expected:
        raise DrillError(f"the past copy holds markers {sorted(found ^ expected)} differently from the live server "
                         "before the target")
    return len(found)


def drill(engine: Pgbackrest, repo: int, db: str, directory: Path, port: int, *, prefix: tuple[str, ...] = (),
          pause: tuple[float, float] = (0.5, 2.0), rng: random.Random | None = None) -> Drill:
    """One drill of one repository. Never raises for what it finds: the result says ok or failed,
    with the reason, and the past copy is gone afterwards."""
    record = Drill(repo, REPO_TIERS.get(repo, f"repo{repo}"),
                   dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    begin = time.monotonic()
    copy = None
    try:
        leftover = existing(directory, prefix)
        if leftover is not None:  # a drill cut off (host restarted, unit killed): its copy goes first
            leftover.drop()
        checked = verify(engine, repo)
        if not checked.ok:
            raise DrillError(checked.text())
        first, target, second = write_markers(db, pause, rng or random.Random())
        with psycopg.connect(db, autocommit=True, connect_timeout=10) as conn:
            expected = {r[0] for r in conn.execute(f"SELECT id FROM {MARKERS} WHERE id <= %s", (first,))}
        record.target = f"{target.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M:%S.%f} UTC"
        engine.run("check")  # a WAL switch, and every repository has the segment
        restoring = time.monotonic()
        copy, _ = restore_past(engine, repo_states(engine), Target("time", target), directory, port, repo, prefix)
        record.rto_seconds = round(time.monotonic() - restoring, 1)
        record.backup = copy.record().get("backup", "")
        record.markers = check_markers(copy.conninfo(db_name(db)), first, second, expected)
        copy.promote()
        amcheck(copy.conninfo(), "the drill's past copy", all_databases=True)
        record.result = "ok"
    except (PgharborError, psycopg.Error, OSError) as exc:
        record.error = str(exc).strip()
    finally:
        if copy is not None and copy.datadir.exists():
            try:
                copy.drop()
            except (PgharborError, OSError) as exc:
                record.error = (record.error + "; " if record.error else "") + f"dropping the past copy failed: {exc}"
                record.result = "failed"
        record.seconds = round(time.monotonic() - begin, 1)
    return record


def db_name(conninfo: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(conninfo).get("dbname") or "postgres"
