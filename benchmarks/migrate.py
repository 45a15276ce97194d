#!/usr/bin/env python3
"""pg_migrate's copy against the standard tools, on one generated database.

Two throwaway PostgreSQL 15 servers on loopback (tests/pgserver.py). The
source gets a generated database of --scale GB (several tables, the largest
with a GIN index on jsonb), then a VACUUM ANALYZE and a wait until no
autovacuum worker runs, so that no tool meets a vacuum of the fresh data.
Each round runs every tool once into a freshly created target database:
pgharbor (module_utils/pgharbor/migration/migrate.py), pg_dump -Fc |
pg_restore, pg_dump -Fd -j J + pg_restore -j J, pgcopydb clone. The order
rotates from round to round (round 1 starts with the first tool, round 2
with the second, ...), so no tool always runs first on a cold cache, and
every run starts from the same state: an empty target and a CHECKPOINT on
both servers. After each pgharbor copy, pg_compare
(module_utils/pgharbor/migration/compare.py) compares source and target.
Medians and the spread (min-max) over --rounds rounds; results as JSON in
benchmarks/results/ and as a Markdown table on stdout.

    .venv/bin/python benchmarks/migrate.py --scale 1 --rounds 3 --jobs 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "module_utils"), str(REPO / "benchmarks")]

from benchdb import DB, generate, psql, run  # noqa: E402
from pgserver import PG_BINDIR, start_server  # noqa: E402

from pgharbor.migration.compare import compare  # noqa: E402
from pgharbor.migration.migrate import migrate  # noqa: E402


def reset_target(source, target) -> None:
    """The same starting point for every run: an empty target database, and
    no dirty buffers on either server (a checkpoint a run would otherwise
    pay for the run before it)."""
    psql(target, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(target, f"CREATE DATABASE {DB} TEMPLATE template0")
    psql(source, "CHECKPOINT")
    psql(target, "CHECKPOINT")


def settle(source, timeout: float = 600) -> None:
    """After generating: vacuum and analyze, then wait until no autovacuum
    worker is left, so that none runs during the first tool's copy."""
    psql(source, "VACUUM ANALYZE", db=DB)
    deadline = time.monotonic() + timeout
    while psql(source, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'") != "0":
        if time.monotonic() > deadline:
            raise SystemExit("autovacuum still running after 10 minutes: try again on an idle machine")
        time.sleep(2)


def rotated(names: list[str], round_no: int) -> list[str]:
    """Round r starts with tool r (mod the number of tools)."""
    shift = round_no % len(names)
    return names[shift:] + names[:shift]


@contextmanager
def phase_watch(status: Path, phases: list[dict[str, float]]):
    """Where pg_migrate's time goes: its status file (what migrate.yml polls)
    read every 0.1 s; each phase's seconds go into a new dict in phases."""
    seen: dict[str, float] = {}
    stop = threading.Event()

    def watch() -> None:
        current, since = None, time.monotonic()
        while not stop.is_set():
            try:
                phase = json.loads(status.read_text())["phase"]
            except (OSError, ValueError, KeyError):
                phase = current
            now = time.monotonic()
            if phase != current:
                if current is not None:
                    seen[current] = seen.get(current, 0.0) + now - since
                current, since = phase, now
            stop.wait(0.1)
        if current is not None and current != "done":
            seen[current] = seen.get(current, 0.0) + time.monotonic() - since

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        status.unlink(missing_ok=True)
        phases.append({name: round(s, 1) for name, s in seen.items() if name != "done"})


def tools(source, target, jobs: int, work: Path, phases: list[dict[str, float]]) -> dict:
    src, dst = source.conninfo(DB), target.conninfo(DB)
    env = {"PGPASSWORD": source.password}  # both servers: superuser postgres, own passwords
    bindir = PG_BINDIR

    def pgharbor() -> None:
        status = work / "status.json"
        with phase_watch(status, phases):
            migrate(src, dst, jobs=jobs, status_path=str(status))

    def dump_restore() -> None:
        run(f"{bindir}/pg_dump -Fc '{src}' | {bindir}/pg_restore --exit-on-error -d '{dst}'")

    def directory_parallel() -> None:
        out = work / "dump"
        shutil.rmtree(out, ignore_errors=True)
        run([f"{bindir}/pg_dump", "-Fd", f"-j{jobs}", "-f", str(out), src], env)
        run([f"{bindir}/pg_restore", "--exit-on-error", f"-j{jobs}", "-d", dst, str(out)])
        shutil.rmtree(out)

    def pgcopydb() -> None:
        out = work / "pgcopydb"
        shutil.rmtree(out, ignore_errors=True)
        run(["pgcopydb", "clone", "--source", src, "--target", dst, "--table-jobs", str(jobs),
             "--index-jobs", str(jobs), "--dir", str(out), "--no-owner", "--no-acl"],
            {"PGCOPYDB_SOURCE_PGURI": src, "PGCOPYDB_TARGET_PGURI": dst})
        shutil.rmtree(out)

    return {"pgharbor pg_migrate": pgharbor, "pg_dump -Fc piped into pg_restore": dump_restore,
            f"pg_dump -Fd -j{jobs} + pg_restore -j{jobs}": directory_parallel,
            f"pgcopydb clone (jobs {jobs})": pgcopydb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="database size in GB (about)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()

    source, target = start_server(), start_server()
    work = Path(tempfile.mkdtemp(prefix="pgharbor-bench-"))
    os.chmod(work, 0o777)
    try:
        size = generate(source, args.scale)
        settle(source)
        timings: dict[str, list[float]] = {}
        orders: list[list[str]] = []
        compares: list[float] = []
        phases: list[dict[str, float]] = []
        every = tools(source, target, args.jobs, work, phases)
        for round_no in range(args.rounds):
            orders.append(rotated(list(every), round_no))
            for name in orders[-1]:
                tool = every[name]
                reset_target(source, target)
                started = time.monotonic()
                tool()
                timings.setdefault(name, []).append(time.monotonic() - started)
                print(f"round {round_no + 1}: {name}: {timings[name][-1]:.1f} s", file=sys.stderr)
                if name == "pgharbor pg_migrate":
                    report = compare(source.conninfo(DB), target.conninfo(DB), jobs=args.jobs)
                    assert report.equal, report.differences()
                    compares.append(report.seconds)
                    print(f"round {round_no + 1}: pg_compare: {report.seconds:.1f} s", file=sys.stderr)
        medians = {name: statistics.median(values) for name, values in timings.items()}
        ours = medians["pgharbor pg_migrate"]
        result = {
            "date": time.strftime("%Y-%m-%d"), "cpus": len(os.sched_getaffinity(0)), "database_bytes": size,
            "rounds": args.rounds, "jobs": args.jobs, "order": orders, "seconds": timings,
            "median_seconds": medians,
            "pg_compare_seconds": compares, "pg_compare_median": statistics.median(compares),
            "pg_migrate_phases": phases,
            "command": " ".join([".venv/bin/python", "benchmarks/migrate.py", f"--scale {args.scale}",
                                 f"--rounds {args.rounds}", f"--jobs {args.jobs}"]),
        }
        out = REPO / "benchmarks" / "results" / f"migrate-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print("| tool | median s | min-max s | runs (s, round order) | vs pgharbor |\n"
              "| --- | ---: | ---: | --- | ---: |")
        for name, median in medians.items():
            runs = ", ".join(f"{v:.1f}" for v in timings[name])
            spread = f"{min(timings[name]):.1f}-{max(timings[name]):.1f}"
            print(f"| {name} | {median:.1f} | {spread} | {runs} | {median / ours:.2f}x |")
        print(f"| pg_compare (after pgharbor) | {result['pg_compare_median']:.1f} | "
              f"{min(compares):.1f}-{max(compares):.1f} | {', '.join(f'{v:.1f}' for v in compares)} | "
              f"{result['pg_compare_median'] / ours:.0%} of the copy |")
        print("\norder per round: " + "; ".join(" > ".join(order) for order in orders))
        print("\nwhere pg_migrate's time goes (median s per phase): " + ", ".join(
            f"{name} {statistics.median(p.get(name, 0.0) for p in phases):.1f}" for name in phases[0]))
        print(f"\n{size / 1e9:.2f} GB database, {result['cpus']} CPUs; results: {out.relative_to(REPO)}")
    finally:
        source.remove()
        target.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
