#!/usr/bin/env python3
"""A pgharbor backup against the bare pg_dump, on one generated database.

One throwaway PostgreSQL 15 server on loopback (tests/pgserver.py) with the
benchmarks' generated database (benchmarks/benchdb.py, --scale GB). Each round
runs, in turn: the bare `pg_dump -Fc -Z0 > /dev/null` (the ceiling: nothing
compressed, encrypted or stored), pgharbor's backup (pg_dump | zstd | gpg into
a directory, hashed, manifest with row counts from the same snapshot:
module_utils/pgharbor/backup/take.py), and the default `pg_dump -Fc` (gzip level 6)
into a file for reference. After each pgharbor backup, a restore drill
(module_utils/pgharbor/backup/verify.py, level restore) restores it into a scratch
database, checks it against the manifest and pg_amcheck: its time per GB is
recorded. Medians over --rounds rounds; results as JSON in benchmarks/results/
and a Markdown table on stdout.

    .venv/bin/python benchmarks/backup.py --scale 1 --rounds 3
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

from benchdb import DB, generate, run  # noqa: E402
from gpgtest import make_key  # noqa: E402
from pgserver import PG_BINDIR, start_server  # noqa: E402

from pgharbor.backup.keys import import_keys  # noqa: E402
from pgharbor.backup.store import Store  # noqa: E402
from pgharbor.backup.take import BackupSettings, take_backup  # noqa: E402
from pgharbor.backup.verify import verify  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="database size in GB (about)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    server = start_server()
    work = Path(tempfile.mkdtemp(prefix="pgharbor-bench-"))
    try:
        size = generate(server, args.scale)
        key = make_key("bench <bench@example.test>")
        keyring = work / "keyring"
        import_keys(keyring, key.public)
        directory = work / "tier1"
        directory.mkdir()
        settings = BackupSettings(conninfo=server.conninfo(DB), directory=str(directory), keyring=str(keyring),
                                  recipients=[key.fingerprint])
        env = {"PGPASSWORD": server.password}
        dsn = f"host={server.host} port={server.port} dbname={DB} user=postgres"
        timings: dict[str, list[float]] = {}
        stored: dict[str, list[int]] = {}
        drills: list[float] = []

        def bare() -> None:
            run(f"{PG_BINDIR}/pg_dump -Fc -Z0 -d '{dsn}' > /dev/null", env)

        def pgharbor() -> None:
            manifest = take_backup(settings)
            stored.setdefault("pgharbor backup (zstd 3 + gpg AES-256)", []).append(manifest.size)

        def gzip_default() -> None:
            out = work / "default.dump"
            run(f"{PG_BINDIR}/pg_dump -Fc -d '{dsn}' -f {out}", env)
            stored.setdefault("pg_dump -Fc (gzip 6) to a file", []).append(out.stat().st_size)
            out.unlink()

        tools = {"pg_dump -Fc -Z0 > /dev/null": bare, "pgharbor backup (zstd 3 + gpg AES-256)": pgharbor,
                 "pg_dump -Fc (gzip 6) to a file": gzip_default}
        for round_no in range(args.rounds):
            for name, tool in tools.items():
                started = time.monotonic()
                tool()
                timings.setdefault(name, []).append(time.monotonic() - started)
                print(f"round {round_no + 1}: {name}: {timings[name][-1]:.1f} s", file=sys.stderr)
            [backup] = Store(directory).backups()
            record = verify(backup, "restore", private_key=key.secret, server=server.conninfo())
            drills.append(record.restore_seconds or 0.0)
            print(f"round {round_no + 1}: restore drill: {record.seconds:.1f} s "
                  f"(restore {record.restore_seconds:.1f} s)", file=sys.stderr)
            backup.artefact.unlink()
            backup.manifest_path.unlink()
        medians = {name: statistics.median(values) for name, values in timings.items()}
        bare_median = medians["pg_dump -Fc -Z0 > /dev/null"]
        gb = size / 1e9
        result = {
            "date": time.strftime("%Y-%m-%d"), "cpus": len(os.sched_getaffinity(0)), "database_bytes": size,
            "rounds": args.rounds, "seconds": timings, "median_seconds": medians, "stored_bytes": stored,
            "restore_seconds": drills, "restore_seconds_per_gb": statistics.median(drills) / gb,
            "command": f".venv/bin/python benchmarks/backup.py --scale {args.scale} --rounds {args.rounds}",
        }
        out = REPO / "benchmarks" / "results" / f"backup-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print("| tool | median s | runs (s) | MB/s of database | throughput vs bare pg_dump | stored MB |")
        print("| --- | ---: | --- | ---: | ---: | ---: |")
        for name, median in medians.items():
            runs = ", ".join(f"{v:.1f}" for v in timings[name])
            kept = f"{statistics.median(stored[name]) / 1e6:.0f}" if name in stored else "-"
            print(f"| {name} | {median:.1f} | {runs} | {size / 1e6 / median:.0f} | {bare_median / median:.0%} "
                  f"| {kept} |")
        print(f"\nrestore drill (restore only): median {statistics.median(drills):.1f} s = "
              f"{result['restore_seconds_per_gb']:.1f} s per GB of database")
        print(f"{gb:.2f} GB database, {result['cpus']} CPUs; results: {out.relative_to(REPO)}")
    finally:
        server.remove()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
