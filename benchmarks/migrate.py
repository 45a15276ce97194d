#!/usr/bin/env python3
"""pg_migrate's copy against the standard tools, on one generated database.

Two throwaway PostgreSQL 15 servers on loopback (tests/pgserver.py). The
source gets a generated database of --scale GB (several tables, the largest
with a GIN index on jsonb). Each round runs every tool once, in turn, into a
freshly created target database: pgharbor (module_utils/pgharbor/migrate.py),
pg_dump -Fc | pg_restore, pg_dump -Fd -j J + pg_restore -j J, pgcopydb clone.
After each pgharbor copy, pg_compare (module_utils/pgharbor/compare.py)
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "module_utils")]

from pgharbor.compare import compare  # noqa: E402
from pgharbor.migrate import migrate  # noqa: E402
from pgserver import PG_BINDIR, start_server  # noqa: E402

DB = "bench"

# Rows per GB of database (measured: about 1.05 GB at scale 1).
GENERATE = """
CREATE SCHEMA bench;
CREATE TABLE bench.customers (id bigint PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL);
INSERT INTO bench.customers
SELECT n, 'customer ' || n, 'c' || n || '@example.test', '2020-01-01'::timestamptz + n * interval '1 minute'
FROM generate_series(1, {customers}) n;
CREATE TABLE bench.orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES bench.customers,
                           amount numeric(12, 2) NOT NULL, placed_at timestamptz NOT NULL);
INSERT INTO bench.orders
SELECT n, 1 + n % {customers}, (n % 100000) / 100.0, '2021-01-01'::timestamptz + n * interval '1 second'
FROM generate_series(1, {orders}) n;
CREATE INDEX ON bench.orders (customer_id);
CREATE TABLE bench.events (id bigint PRIMARY KEY, at timestamptz NOT NULL, kind text NOT NULL, payload jsonb);
INSERT INTO bench.events
SELECT n, '2022-01-01'::timestamptz + n * interval '1 second', 'kind-' || n % 17,
       jsonb_build_object('n', n, 'user', 'u' || n % 5000, 'tags', jsonb_build_array('a' || n % 11, 'b' || n % 13),
                          'note', md5(n::text))
FROM generate_series(1, {events}) n;
CREATE INDEX events_payload ON bench.events USING gin (payload);
CREATE TABLE bench.documents (id bigint PRIMARY KEY, body bytea NOT NULL);
INSERT INTO bench.documents SELECT n, decode(repeat(md5(n::text), 64), 'hex') FROM generate_series(1, {documents}) n;
CREATE SEQUENCE bench.invoice_no;
SELECT setval('bench.invoice_no', 123456);
ANALYZE;
"""


def sizes(scale: float) -> dict[str, int]:
    return {"customers": int(500_000 * scale), "orders": int(2_500_000 * scale), "events": int(2_600_000 * scale),
            "documents": int(120_000 * scale)}


def run(argv: list[str] | str, env: dict | None = None) -> None:
    subprocess.run(argv, check=True, shell=isinstance(argv, str), env={**os.environ, **(env or {})},
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def psql(server, statement: str, db: str = "postgres") -> str:
    with server.connect(db, autocommit=True) as conn:
        cur = conn.execute(statement)
        return str(cur.fetchone()[0]) if cur.description else ""


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
        psql(source, f"CREATE DATABASE {DB}")
        started = time.monotonic()
        with source.connect(DB, autocommit=True) as conn:
            conn.execute(GENERATE.format(**sizes(args.scale)))
        size = int(psql(source, f"SELECT pg_database_size('{DB}')"))
        print(f"generated {size / 1e9:.2f} GB in {time.monotonic() - started:.0f} s", file=sys.stderr)
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
        print(f"| tool | median s | runs (s) | vs pgharbor |\n| --- | ---: | --- | ---: |")
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
