"""pgharbor-timetravel: the time-travel layer's command line on the DB host.

    pgharbor-timetravel backup --type full|diff|incr   a pgBackRest backup to every repository (the timers)
    pgharbor-timetravel status                         windows, newest backups, archive age; exit 1 when unhealthy
    pgharbor-timetravel verify                         pgbackrest verify on every repository, read properly
    pgharbor-timetravel drill                          restore a repository (in rotation) to a recent time, check it
    pgharbor-timetravel rebuild --as-of T --into DIR   tier 3 as it was at T, from the bucket's object versions
    pgharbor-timetravel on-role-change ACTION ROLE     Patroni's callback: a new primary makes its stanzas

In a cluster (high availability) every member has the timers; backups and
drills act on the primary only (each run asks its server), and status on a
standby says so instead of reporting a layer it does not keep.

Settings come from a JSON file written by the pg_timetravel role
(/etc/pgharbor/timetravel.json); each key is the role variable without its
pg_timetravel_ prefix.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

from ..common.gauges import exposition
from ..common.settings import TIMETRAVEL_CONFIG
from ..ha.member import Acting, acting
from ..tiers.report import timetravel_gauges, timetravel_report
from ..timetravel.drill import drill, log_drill, next_repo
from ..timetravel.engine import Pgbackrest, PgbackrestError
from ..timetravel.health import BACKUP_TYPES, RunLog, archiver_state, health
from ..timetravel.pastcopy import Target
from ..timetravel.verify import verify
from ..timetravel.window import repo_states
from .command import acting_gauge, add_prometheus_option, run_command, status_elsewhere, write_gauges

# The drill's past copy: beside the live cluster, in the postgres user's home (the role's default).
DRILL_DIRECTORY = "/var/lib/postgresql/pgharbor-drill"


def _engine(config: dict) -> Pgbackrest:
    return Pgbackrest(config["pgbackrest_config"], config["stanza"])


def _repos(config: dict) -> list[int]:
    return [int(r) for r in config.get("repos", [1])]


# what only the primary does: pgBackRest backs up and archives from it
JOB = "time travel's backups, drills and archiving"
# Patroni's names for a member that leads (3.0 says master)
LEADING = ("master", "primary", "promoted")


def _here(config: dict) -> Acting:
    return acting(config["db"], "primary", JOB)


def cmd_backup(config: dict, args: argparse.Namespace) -> int:
    """Every repository in turn; one failing does not keep the next from its backup. Each run
    is recorded for status, and any failure makes the exit status 1 (the unit fails). In a
    cluster, on the primary only; its stanzas made first where missing (a repository that
    was a standby's until a failover)."""
    here = _here(config)
    if not here.acting:
        print(f"no backup: {here.reason}")
        return 0
    engine, log = _engine(config), RunLog(Path(config["run_log"]))
    try:
        engine.run("stanza-create")
    except PgbackrestError as exc:
        # a repository pgBackRest cannot reach: its backup below fails, is recorded and named
        print(f"note: {exc}", file=sys.stderr)
    failed = []
    for repo in args.repo or _repos(config):
        started, begin = dt.datetime.now(dt.timezone.utc), time.monotonic()
        try:
            engine.run("backup", f"--repo={repo}", f"--type={args.type}")
            error = ""
        except PgbackrestError as exc:
            error = str(exc)
            failed.append(f"repo{repo}: {error}")
        log.record(args.type, repo, started, time.monotonic() - begin, error)
        print(f"{args.type} backup to repo{repo}: " + (f"FAILED: {error}" if error else
                                                       f"ok in {time.monotonic() - begin:.0f} s"))
    if failed:
        print(f"{len(failed)} of {len(args.repo or _repos(config))} {args.type} backups failed", file=sys.stderr)
        return 1
    return 0


def cmd_status(config: dict, args: argparse.Namespace) -> int:
    host = config.get("host") or os.uname().nodename

    def acting(here: bool) -> list[str]:
        return acting_gauge("pgharbor_timetravel_acting", "1 where time travel backs up and archives (in a "
                            "cluster, the primary)", host, here)

    elsewhere = status_elsewhere(lambda: _here(config), args, acting, "time travel acts elsewhere")
    if elsewhere is not None:
        return elsewhere
    engine = _engine(config)
    drill_days = config.get("drill_max_age_days")
    report = health(repo_states(engine), RunLog(Path(config["run_log"])).read(),
                    dt.timedelta(minutes=float(config.get("max_archive_age_minutes", 5))),
                    dt.datetime.now(dt.timezone.utc), archiver_state(config["db"]),
                    dt.timedelta(days=float(drill_days)) if drill_days else None)
    if args.prometheus:
        layer = timetravel_report(report, None)
        write_gauges(args.prometheus, exposition(timetravel_gauges(host, layer) + acting(True)))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        for r in report["repos"]:
            newest = ", ".join(f"{k} {v['label']}" if v else f"{k} -" for k, v in r["newest"].items())
            age = r["archive_age_seconds"]
            print(f"repo{r['repo']} ({r['tier']}): {r['backups']} backups, {r['bytes'] >> 20} MiB; {newest}")
            print(f"  window {r['window']['oldest'] or '-'} to {r['window']['newest'] or '-'} "
                  f"({r['window']['days']} days); archive age " + (f"{age} s" if age is not None else "-"))
            checked, drilled = r["verify"], r["drill"]
            print("  verify " + (f"{checked['result']} ({checked['started']})" if checked else "-") + "; drill "
                  + (f"{drilled['result']} ({drilled['started']}, RTO {drilled.get('rto_seconds')} s)"
                     if drilled else "-"))
        print("health: " + ("ok" if report["healthy"] else "FAILING: " + "; ".join(report["problems"])))
    return 0 if report["healthy"] else 1


def cmd_verify(config: dict, args: argparse.Namespace) -> int:
    """Each verdict is recorded for status: damage stays a problem until a verify finds none."""
    engine, log, bad = _engine(config), RunLog(Path(config["run_log"])), 0
    for repo in args.repo or _repos(config):
        started, begin = dt.datetime.now(dt.timezone.utc), time.monotonic()
        report = verify(engine, repo)
        log.record("verify", repo, started, time.monotonic() - begin, "" if report.ok else report.text())
        print(report.text())
        bad += not report.ok
    return 1 if bad else 0


def cmd_drill(config: dict, args: argparse.Namespace) -> int:
    """One drill: the repository named, or the next in rotation after the last drilled. On the
    primary only: the drill commits its markers there."""
    here = _here(config)
    if not here.acting:
        print(f"no drill: {here.reason}")
        return 0
    log = RunLog(Path(config["run_log"]))
    repos = _repos(config)
    if args.repo is None:
        drilled = [(run["started"], int(key.split("/repo")[1])) for key, run in log.read().items()
                   if key.startswith("drill/")]
        repo = next_repo(repos, max(drilled)[1] if drilled else None)
    else:
        repo = args.repo
    record = drill(_engine(config), repo, config["db"], Path(config.get("drill_directory", DRILL_DIRECTORY)),
                   int(config.get("drill_port", 5432)))
    log_drill(log, record)
    print(record.text(), file=sys.stdout if record.result == "ok" else sys.stderr)
    return 0 if record.result == "ok" else 1


def cmd_rebuild(config: dict, args: argparse.Namespace) -> int:
    """repo2 as of a time into a directory, with the rebuild key from the environment
    (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE): never the DB host's key, which
    cannot read old versions."""
    from ..tiers.asof import AsOfError, rebuild, s3_client  # boto3 only where tier 3 is

    tier3 = config.get("tier3")
    if not tier3:
        raise AsOfError(f"{args.config} has no tier 3 (pg_timetravel_tier3 is not set): nothing to rebuild")
    when = Target.parse(args.as_of)
    if when.kind != "time":
        raise AsOfError(f"--as-of {args.as_of!r}: give a time, ISO 8601 with its time zone")
    done = rebuild(s3_client(tier3), tier3["bucket"], tier3["path"], when.time, Path(args.into))
    print(done.text())
    print(f"restore from it: time_travel.yml -e time_travel_repo=2 -e time_travel_repo_path={args.into}, or "
          f"pgbackrest --repo=2 --repo2-type=posix --repo2-path={args.into} restore ...")
    return 0


def cmd_on_role_change(config: dict, args: argparse.Namespace) -> int:
    """Patroni's on_role_change callback (through postgresql_server's hook directory): a member
    that now leads makes its stanzas where missing, so that archiving to its own repository
    works from its first segment (the backups follow with the next timer run)."""
    if args.role not in LEADING:
        print(f"{args.action} {args.role}: nothing to do on a standby")
        return 0
    _engine(config).run("stanza-create")
    print(f"{args.action} {args.role}: the stanza {config['stanza']} is in every repository")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgharbor-timetravel", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.environ.get("PGHARBOR_TIMETRAVEL_CONFIG", TIMETRAVEL_CONFIG))
    sub = p.add_subparsers(dest="command", required=True)
    backup = sub.add_parser("backup", help="a backup to every repository")
    backup.add_argument("--type", choices=BACKUP_TYPES, required=True)
    backup.add_argument("--repo", type=int, action="append", help="one repository (repeat for more); default all")
    status = sub.add_parser("status", help="health of the time-travel layer; exit 1 when unhealthy")
    add_prometheus_option(status)
    status.add_argument("--json", action="store_true")
    check = sub.add_parser("verify", help="pgbackrest verify, read properly; exit 1 on damage")
    check.add_argument("--repo", type=int, action="append", help="one repository (repeat for more); default all")
    drilling = sub.add_parser("drill", help="restore a repository to a recent time and check it; exit 1 if it fails")
    drilling.add_argument("--repo", type=int, help="the repository; default the next in rotation")
    rebuild = sub.add_parser("rebuild", help="tier 3 as it was at a time, from the bucket's object versions")
    rebuild.add_argument("--as-of", required=True, help="the time, ISO 8601 with its time zone")
    rebuild.add_argument("--into", required=True, help="a new directory: the repository rebuilt there")
    changed = sub.add_parser("on-role-change", help="Patroni's callback: a new primary makes its stanzas")
    changed.add_argument("action", help="Patroni's action (on_role_change)")
    changed.add_argument("role", help="the member's new role (master or primary: it leads)")
    changed.add_argument("scope", nargs="?", help="the cluster's name")
    return p


COMMANDS = {"backup": cmd_backup, "status": cmd_status, "verify": cmd_verify, "drill": cmd_drill,
            "rebuild": cmd_rebuild, "on-role-change": cmd_on_role_change}


def main(argv: list[str] | None = None) -> int:
    return run_command(parser(), argv, COMMANDS, ("stanza", "pg_timetravel_stanza"))


if __name__ == "__main__":
    sys.exit(main())
