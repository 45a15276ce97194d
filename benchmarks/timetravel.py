#!/usr/bin/env python3
"""The time-travel layer against the bare standard tool, on one generated database.

One throwaway PostgreSQL 15 server on loopback archiving through pgBackRest
(tests/timetravel.py: the pg_timetravel role's own configuration template,
repo1 on local disk, zstd 3, aes-256-cbc, asynchronous archiving), holding the
benchmarks' generated database (benchmarks/benchdb.py, --scale GB).

- backup: a pgBackRest full backup against a bare `pg_basebackup -Ft -Xfetch`
  into a directory (no compression, no encryption: the ceiling);
- restore until ready: pgBackRest restore (--type=immediate) and the start of
  the restored cluster until it is out of recovery and read-write, against
  untarring the pg_basebackup and starting that; then, after --wal-mb of WAL
  from updates of pgbench's accounts, a pgBackRest restore to the end of the
  archive until read-write: the time to replay that WAL volume, the copy
  checked to hold every update;
- pgbench TPS (--pgbench-seconds per run, 2 clients) with archiving on against
  archiving off (archive_mode off: a restart between), alternately.

Each round rotates the order of the tools and starts each from the same state
(a CHECKPOINT; the restore targets removed). Medians and the spread over
--rounds rounds; JSON in benchmarks/results/ and a Markdown table on stdout.

    .venv/bin/python benchmarks/timetravel.py --scale 1 --rounds 5
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
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests"), str(REPO / "module_utils"), str(REPO / "benchmarks")]

from benchdb import generate, psql  # noqa: E402
from pgserver import PG_BINDIR, _as_server_user, free_port  # noqa: E402
from timetravel import start_archiving  # noqa: E402

from pgharbor.timetravel.pastcopy import restore_options  # noqa: E402

AS_POSTGRES = _as_server_user()


def as_postgres(*argv: str, env: dict | None = None) -> None:
    subprocess.run([*AS_POSTGRES, *argv], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   env={**os.environ, **(env or {})})


def start_and_wait(datadir: Path, query: str | None = None) -> str | None:
    """Start a restored cluster on a socket of its own and wait until it is ready for the application:
    out of recovery, read-write. (`pg_ctl start -w` returns once it accepts connections, which a cluster
    in archive recovery does read-only as soon as it is consistent, before the rest of the WAL is
    replayed.) Returns the answer to query (in the pgbench database), asked before the cluster stops
    again, if one is given."""
    port = free_port()
    as_postgres(str(PG_BINDIR / "pg_ctl"), "start", "-w", "-t", "3600", "-D", str(datadir), "-l",
                str(datadir / "bench.log"), "-o", f"-c port={port} -c listen_addresses='' "
                f"-c unix_socket_directories={datadir} -c archive_mode=off")

    def ask(statement: str, db: str = "postgres") -> str:
        return subprocess.run([*AS_POSTGRES, str(PG_BINDIR / "psql"), "-h", str(datadir), "-p", str(port), "-d", db,
                               "-XAtc", statement], check=True, capture_output=True, text=True).stdout.strip()

    deadline = time.monotonic() + 3600
    while ask("SELECT pg_is_in_recovery()") == "t":
        if time.monotonic() > deadline:
            raise SystemExit(f"the restored cluster in {datadir} was still in recovery after an hour")
        time.sleep(0.05)
    answer = ask(query, "pgbench") if query else None
    as_postgres(str(PG_BINDIR / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(datadir))
    return answer


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    as_postgres("mkdir", "-m", "0700", str(path))
    return path


def rotated(tools: dict[str, Callable[[], None]], round_no: int, timings: dict[str, list[float]]) -> None:
    names = list(tools)
    order = names[round_no % len(names):] + names[:round_no % len(names)]
    for name in order:
        started = time.monotonic()
        tools[name]()
        timings.setdefault(name, []).append(time.monotonic() - started)
        print(f"round {round_no + 1}: {name}: {timings[name][-1]:.1f} s", file=sys.stderr)


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="database size in GB (about)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pgbench-seconds", type=int, default=60)
    parser.add_argument("--wal-mb", type=int, default=512, help="WAL written before the replay measurement")
    args = parser.parse_args()

    arch = start_archiving(settings={"max_wal_size": "4GB"})
    server, engine = arch.server, arch.engine
    work = Path(tempfile.mkdtemp(prefix="pgharbor-bench-tt-", dir=server.basedir))
    server._chown_to_server_user(work)
    env = {"PGPASSWORD": server.password}
    dsn = f"host={server.host} port={server.port} user=postgres"
    try:
        size = generate(server, args.scale)
        psql(server, "CREATE DATABASE pgbench")
        as_postgres(str(PG_BINDIR / "pgbench"), "-i", "-q", "-s", "20", "-d", f"{dsn} dbname=pgbench", env=env)
        arch.archived(timeout=600)
        backups: dict[str, list[float]] = {}
        restores: dict[str, list[float]] = {}
        base = work / "basebackup"
        target = work / "restored"

        def pgbackrest_backup() -> None:
            engine.run("backup", "--repo=1", "--type=full")

        def basebackup() -> None:
            fresh_dir(base)
            as_postgres(str(PG_BINDIR / "pg_basebackup"), "-Ft", "-Xfetch", "-c", "fast", "-D", str(base),
                        "-d", f"{dsn} dbname=postgres", env=env)

        def pgbackrest_restore() -> None:
            fresh_dir(target)
            engine.run("restore", *restore_options(engine, 1, target), "--type=immediate", "--target-action=promote")
            start_and_wait(target)

        def basebackup_restore() -> None:
            fresh_dir(target)
            as_postgres("tar", "-xf", str(base / "base.tar"), "-C", str(target))  # -Xfetch: its WAL is inside
            start_and_wait(target)

        for round_no in range(args.rounds):
            psql(server, "CHECKPOINT")
            rotated({"pgBackRest full backup (zstd 3, aes-256-cbc)": pgbackrest_backup,
                     "pg_basebackup -Ft -Xfetch (bare)": basebackup}, round_no, backups)
            rotated({"pgBackRest restore + start until read-write": pgbackrest_restore,
                     "untar pg_basebackup + start until read-write": basebackup_restore}, round_no, restores)

        # Replay: WAL written after the newest backup, replayed by a restore to the end of the archive. The
        # WAL comes from updates of pgbench's accounts, a quarter of them per statement: a loop of
        # pgbench's own small transactions had not reached 512 MB after 11 minutes.
        before = psql(server, "SELECT pg_current_wal_lsn()")
        wal_bytes, quarter = 0, 0
        while wal_bytes < args.wal_mb << 20:
            psql(server, f"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 4 = {quarter}",
                 db="pgbench")
            quarter = (quarter + 1) % 4
            wal_bytes = int(float(psql(server, f"SELECT pg_current_wal_lsn() - '{before}'::pg_lsn")))
        print(f"wrote {wal_bytes / 1e6:.0f} MB of WAL", file=sys.stderr)
        arch.archived(timeout=1800)
        # What the copy must hold once every archived segment is replayed: the total after the last update.
        balances = "SELECT sum(abalance) FROM pgbench_accounts"
        expected = psql(server, balances, db="pgbench")
        replay: list[float] = []
        for _ in range(args.rounds):
            fresh_dir(target)
            started = time.monotonic()
            engine.run("restore", *restore_options(engine, 1, target), "--type=default")
            replayed = start_and_wait(target, balances)
            replay.append(time.monotonic() - started)
            if replayed != expected:
                raise SystemExit(f"the restored copy holds sum(abalance) {replayed}, the source {expected}: "
                                 "the WAL was not all replayed")
            print(f"restore + replay of {wal_bytes / 1e6:.0f} MB WAL: {replay[-1]:.1f} s", file=sys.stderr)

        # pgbench with archiving on and off, alternately (a restart between: archive_mode needs one).
        tps: dict[str, list[float]] = {}
        modes = ["archiving on (pgBackRest, async)", "archiving off"]
        for round_no in range(args.rounds):
            for mode in modes[round_no % 2:] + modes[:round_no % 2]:
                server.stop()
                server.settings["archive_mode"] = "on" if mode.startswith("archiving on") else "off"
                server.start()
                psql(server, "CHECKPOINT")
                result = subprocess.run([*AS_POSTGRES, str(PG_BINDIR / "pgbench"), "-c", "2", "-j", "2", "-T",
                                         str(args.pgbench_seconds), "-d", f"{dsn} dbname=pgbench"],
                                        capture_output=True, text=True, check=True, env={**os.environ, **env})
                line = next(x for x in result.stdout.splitlines() if x.startswith("tps = "))
                tps.setdefault(mode, []).append(float(line.split()[2]))
                print(f"round {round_no + 1}: pgbench {mode}: {tps[mode][-1]:.0f} tps", file=sys.stderr)
        server.stop()
        server.settings["archive_mode"] = "on"
        server.start()

        result = {
            "date": time.strftime("%Y-%m-%d"), "cpus": len(os.sched_getaffinity(0)), "database_bytes": size,
            "rounds": args.rounds, "backup_seconds": {k: summary(v) for k, v in backups.items()},
            "restore_seconds": {k: summary(v) for k, v in restores.items()},
            "replay": {"wal_bytes": wal_bytes, "seconds": summary(replay)},
            "pgbench_tps": {k: summary(v) for k, v in tps.items()},
            "command": f".venv/bin/python benchmarks/timetravel.py --scale {args.scale} --rounds {args.rounds} "
                       f"--pgbench-seconds {args.pgbench_seconds} --wal-mb {args.wal_mb}",
        }
        out = REPO / "benchmarks" / "results" / f"timetravel-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print("| measure | median | min-max | runs (in round order) |")
        print("| --- | ---: | ---: | --- |")
        for group, unit in (("backup_seconds", "s"), ("restore_seconds", "s"), ("pgbench_tps", "tps")):
            for name, s in result[group].items():
                print(f"| {name} | {s['median']:.1f} {unit} | {s['min']:.1f}-{s['max']:.1f} | "
                      + ", ".join(f"{v:.1f}" for v in s["runs"]) + " |")
        r = result["replay"]["seconds"]
        print(f"| restore + replay of {wal_bytes / 1e6:.0f} MB of WAL | {r['median']:.1f} s | "
              f"{r['min']:.1f}-{r['max']:.1f} | " + ", ".join(f"{v:.1f}" for v in r["runs"]) + " |")
        on, off = (statistics.median(tps[m]) for m in modes)
        print(f"\npgbench with archiving on: {on / off:.1%} of the TPS without (target: at least 95 %)")
        print(f"{size / 1e9:.2f} GB database, {result['cpus']} CPUs; results: {out.relative_to(REPO)}")
    finally:
        arch.remove()


if __name__ == "__main__":
    main()
