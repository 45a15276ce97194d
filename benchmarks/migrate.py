#!/usr/bin/env python3
"""pg_migrate's copy against the standard tools, on one generated database.

Two throwaway PostgreSQL 15 servers on loopback (tests/pgserver.py). The
source gets a generated database of --scale GB (several tables, the largest
with a GIN index on jsonb). Each round runs every tool once, in turn, into a
freshly created target database: pgharbor (module_utils/pgharbor/migration/migrate.py),
pg_dump -Fc | pg_restore, pg_dump -Fd -j J + pg_restore -j J, pgcopydb clone.
After each pgharbor copy, pg_compare (module_utils/pgharbor/migration/compare.py)
compares source and target. Medians over --rounds rounds; results as JSON in
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "module_utils"), str(REPO / "benchmarks")]

from benchdb import DB, generate, psql, run  # noqa: E402
from pgserver import PG_BINDIR, start_server  # noqa: E402

from pgharbor.migration.compare import compare  # noqa: E402
from pgharbor.migration.migrate import migrate  # noqa: E402


def reset_target(target) -> None:
    psql(target, f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(target, f"CREATE DATABASE {DB} TEMPLATE template0")


def tools(source, target, jobs: int, work: Path) -> dict:
    src, dst = source.conninfo(DB), target.conninfo(DB)
    env = {"PGPASSWORD": source.password}  # both servers: superuser postgres, own passwords
    bindir = PG_BINDIR

    def pgharbor() -> None:
        migrate(src, dst, jobs=jobs)

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
        timings: dict[str, list[float]] = {}
        compares: list[float] = []
        for round_no in range(args.rounds):
            for name, tool in tools(source, target, args.jobs, work).items():
                reset_target(target)
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
            "rounds": args.rounds, "jobs": args.jobs, "seconds": timings, "median_seconds": medians,
            "pg_compare_seconds": compares, "pg_compare_median": statistics.median(compares),
            "command": " ".join([".venv/bin/python", "benchmarks/migrate.py", f"--scale {args.scale}",
                                 f"--rounds {args.rounds}", f"--jobs {args.jobs}"]),
        }
        out = REPO / "benchmarks" / "results" / f"migrate-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print("| tool | median s | runs (s) | vs pgharbor |\n| --- | ---: | --- | ---: |")
        for name, median in medians.items():
            runs = ", ".join(f"{v:.1f}" for v in timings[name])
            print(f"| {name} | {median:.1f} | {runs} | {median / ours:.2f}x |")
        print(f"| pg_compare (after pgharbor) | {result['pg_compare_median']:.1f} | "
              f"{', '.join(f'{v:.1f}' for v in compares)} | {result['pg_compare_median'] / ours:.0%} of the copy |")
        print(f"\n{size / 1e9:.2f} GB database, {result['cpus']} CPUs; results: {out.relative_to(REPO)}")
    finally:
        source.remove()
        target.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
