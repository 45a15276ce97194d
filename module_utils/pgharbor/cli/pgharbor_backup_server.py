"""pgharbor-backup-server: tier 2 on the backup server.

    run      take in what the DB hosts shipped (checked against each manifest),
             then apply each host's retention (the timer runs this)
    list     the stored backups of each host
    status   health per host: count, newest and its age, size, last intake,
             quarantined files, time travel's snapshots, and tier 3 (the
             host's bucket, listed with the backup server's read-only key);
             exit 1 when unhealthy
    pull     time travel's tier 2: a snapshot of each DB host's pgBackRest
             repository, then the snapshots' retention (its timer runs this)

Layout under the configured root, per DB host: incoming/<host> (the only
directory the host's key can write to, through rrsync), store/<host> (the
backups), quarantine/<host> (arrivals that failed their check),
store/<host>/timetravel/<UTC time> (the pulled snapshots; the restore login
reads them as it reads the store).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from ..backup.store import Store
from ..common.atomicfile import replace_file
from ..common.gauges import exposition
from ..common.settings import BACKUP_SERVER_CONFIG, ConfigError, read_credentials
from ..tiers.health import bucket_health, tier_health
from ..tiers.intake import last_arrivals, take_in
from ..tiers.prune import prune_store
from ..tiers.pull import PullError, last_pull, prune, pull, snapshots, write_record
from ..tiers.report import tier_gauges, timetravel_gauges, timetravel_report
from ..tiers.retention import Policy, PolicyError
from ..tiers.s3settings import S3Error, S3Settings
from ..tiers.ssh import ShipError, SshTarget
from .command import add_prometheus_option, run_command, write_gauges

RUN_STATUS = ".last-run.json"
# What status watches: the store here (with time travel's snapshots), and each host's bucket.
TIERS = ("tier2", "tier3")


def host_dirs(root: Path, host: str) -> dict[str, Path]:
    dirs = {name: root / name / host for name in ("incoming", "store", "quarantine")}
    dirs["timetravel"] = dirs["store"] / "timetravel"
    return dirs


def _hosts(config: dict) -> dict[str, dict]:
    hosts = config.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        raise ConfigError("no DB hosts configured (backup_server_clients)")
    return hosts


def cmd_run(config: dict, args: argparse.Namespace) -> int:
    root = Path(config["root"])
    now = datetime.now(timezone.utc)
    failed = 0
    for host, settings in sorted(_hosts(config).items()):
        dirs = host_dirs(root, host)
        record: dict = {"started": now.isoformat(timespec="seconds"), "error": ""}
        try:
            # a dry run changes nothing: no intake either
            arrivals = [] if args.dry_run else take_in(dirs["incoming"], dirs["store"], dirs["quarantine"])
            record["arrivals"] = [asdict(a) for a in arrivals]
            policy = Policy.from_dict(settings.get("retention") or {}, f"backup_server_clients[{host}].retention")
            decisions = prune_store(Store(dirs["store"]), policy, now, dry_run=args.dry_run, all_verified=True)
            record["removed"] = [d.id for d in decisions if not d.keep]
        except (OSError, PolicyError) as exc:
            record["error"] = str(exc)
            failed += 1
        record["result"] = "failed" if record["error"] else "ok"
        for arrival in record.get("arrivals", []):
            if arrival["result"] != "waiting":
                print(f"{host}: {arrival['backup']} {arrival['result']} {arrival['detail']}")
        for removed in record.get("removed", []):
            print(f"{host}: {removed} {'would be removed' if args.dry_run else 'removed'} by retention")
        if record["error"]:
            print(f"{host}: FAILED: {record['error']}", file=sys.stderr)
        if not args.dry_run:
            replace_file(dirs["store"] / RUN_STATUS, json.dumps(record, indent=1, sort_keys=True) + "\n", mode=0o640)
    return 1 if failed else 0


def host_health(root: Path, host: str, settings: dict, now: datetime) -> dict:
    dirs = host_dirs(root, host)
    report = tier_health(str(dirs["store"]), float(settings.get("max_age_hours", 2)), now,
                         max_age_setting=f"backup_server_clients[{host}].max_age_hours")
    quarantined = sorted(p.name for p in dirs["quarantine"].iterdir()) if dirs["quarantine"].is_dir() else []
    arrivals = [a for a in last_arrivals(dirs["store"]) if a.get("result") in ("stored", "quarantined")]
    report.update(host=host, quarantined=quarantined, last_arrival=arrivals[-1] if arrivals else None,
                  retention=settings.get("retention"))
    if quarantined:
        report["problems"].append(f"{len(quarantined)} file(s) in {dirs['quarantine']} failed their check on "
                                  "arrival: look at them, then remove them")
        report["healthy"] = False
    return report


def cmd_pull(config: dict, args: argparse.Namespace) -> int:
    root = Path(config["root"])
    failed = 0
    for host, settings in sorted(_hosts(config).items()):
        if "timetravel" not in settings or args.host not in (None, host):
            continue
        where = host_dirs(root, host)["timetravel"]
        now = datetime.now(timezone.utc)
        try:
            source = SshTarget.from_dict(settings["timetravel"]["source"], f"backup_server_clients[{host}].timetravel")
            policy = Policy.from_dict(settings["timetravel"].get("retention") or {},
                                      f"backup_server_clients[{host}].timetravel.retention")
            record = pull(source, where, now)
            record["removed"] = [d.id for d in prune(where, policy, now) if not d.keep]
            write_record(where, record)
            print(f"{host}: snapshot {record['snapshot']} in {record['seconds']:.1f} s "
                  f"({record['transferred_bytes']} bytes new)"
                  + (f"; removed by retention: {' '.join(record['removed'])}" if record["removed"] else ""))
        except (OSError, PullError, ShipError, PolicyError) as exc:
            failed += 1
            print(f"{host}: FAILED: {exc}", file=sys.stderr)
            where.mkdir(parents=True, exist_ok=True)
            write_record(where, {"started": now.isoformat(timespec="seconds"), "result": "failed",
                                 "error": str(exc), "snapshot": None})
    return 1 if failed else 0


def timetravel_health(root: Path, host: str, settings: dict, now: datetime) -> dict:
    """Time travel's tier 2 for one host: the snapshots and the last pull."""
    where = host_dirs(root, host)["timetravel"]
    found = snapshots(where)
    record = last_pull(where)
    limit = float(settings.get("max_age_minutes", 20))
    age = (now - found[-1].taken).total_seconds() if found else None
    problems = []
    if record and record.get("result") == "failed":
        problems.append(f"the last pull failed: {record['error']}")
    if age is None:
        problems.append(f"no snapshot of {host}'s repository yet: is pg_timetravel_tier2 set on {host}, and the "
                        "pull timer running?")
    elif age > limit * 60:
        problems.append(f"the newest snapshot is {age / 60:.0f} min old, over {limit:g} "
                        f"(backup_server_clients[{host}].timetravel.max_age_minutes)")
    return {"snapshots": len(found), "oldest": found[0].name if found else None,
            "newest": found[-1].name if found else None, "newest_age_seconds": age, "last_pull": record,
            "problems": problems, "healthy": not problems}


def tier3_health(host: str, settings: dict, credentials: dict, now: datetime) -> dict:
    """Tier 3 of one DB host's logical backups, listed with the backup server's key, which may list
    and read the bucket, never write or delete (the DB host's own key may only put objects). A bucket
    that cannot be read is a problem of the report, so that the gauges still say so."""
    setting = f"backup_server_clients[{host}].tier3"
    try:
        bucket = S3Settings.from_dict({**settings["tier3"], **credentials}, setting)
        from ..tiers.s3 import S3Store  # boto3, only where tier 3 is watched
        return bucket_health(S3Store(bucket), float(settings.get("max_age_hours", 2)), now,
                             f"backup_server_clients[{host}].max_age_hours")
    except (S3Error, TypeError) as exc:
        where = settings["tier3"].get("bucket", "?") if isinstance(settings["tier3"], dict) else "?"
        return {"where": f"s3://{where}", "count": None, "bytes": None, "newest": None,
                "newest_age_seconds": None, "problems": [f"{setting}: {exc}"], "healthy": False}


def _nested(report: dict, key: str, part: dict, label: str) -> None:
    report[key] = part
    if not part["healthy"]:
        report["problems"].extend(f"{label}: {p}" for p in part["problems"])
        report["healthy"] = False


def cmd_status(config: dict, args: argparse.Namespace) -> int:
    root = Path(config["root"])
    now = datetime.now(timezone.utc)
    tiers = set(args.tier or TIERS)
    hosts = _hosts(config)
    credentials = read_credentials(config.get("tier3_credentials_file"), "backup_server_tier3_reader") \
        if "tier3" in tiers and any("tier3" in s for s in hosts.values()) else {}
    reports = []
    for host, settings in sorted(hosts.items()):
        report = host_health(root, host, settings, now) if "tier2" in tiers \
            else {"host": host, "problems": [], "healthy": True}
        reports.append(report)
        if "tier2" in tiers and "timetravel" in settings:
            _nested(report, "timetravel", timetravel_health(root, host, settings["timetravel"], now), "time travel")
        if "tier3" in tiers and "tier3" in settings:
            _nested(report, "tier3", tier3_health(host, settings, credentials, now), "tier 3")
    if args.prometheus:
        gauges = tier_gauges([(r["host"], "tier2", r) for r in reports if "tier2" in tiers]
                             + [(r["host"], "tier3", r["tier3"]) for r in reports if "tier3" in r])
        for r in reports:
            if "timetravel" in r:
                gauges += timetravel_gauges(r["host"], timetravel_report({}, r["timetravel"]))
        write_gauges(args.prometheus, exposition(gauges))
    if args.json:
        print(json.dumps(reports, indent=2, sort_keys=True))
    else:
        for r in reports:
            print(f"{r['host']}: " + ("ok" if r["healthy"] else "FAILING: " + "; ".join(r["problems"])))
            if "tier2" in tiers:
                print("  tier 2:      " + _backups_line(r))
            if "timetravel" in r:
                tt = r["timetravel"]
                tt_age = tt["newest_age_seconds"]
                print(f"  time travel: {tt['snapshots']} snapshots, newest {tt['newest'] or '-'}"
                      + (f" ({tt_age / 60:.0f} min old)" if tt_age is not None else ""))
            if "tier3" in r:
                print("  tier 3:      " + _backups_line(r["tier3"]))
    return 0 if all(r["healthy"] for r in reports) else 1


def _backups_line(report: dict) -> str:
    if report["count"] is None:
        return f"unknown ({report['where']})"
    age = report["newest_age_seconds"]
    return (f"{report['count']} backups, {report['bytes'] / (1 << 20):.1f} MiB, newest {report['newest'] or '-'}"
            + (f" ({age / 60:.0f} min old)" if age is not None else ""))


def cmd_list(config: dict, args: argparse.Namespace) -> int:
    root = Path(config["root"])
    listing = {host: [asdict(b.manifest) for b in Store(host_dirs(root, host)["store"]).backups()]
               for host in sorted(_hosts(config)) if args.host in (None, host)}
    if args.json:
        print(json.dumps(listing, indent=2))
    else:
        for host, manifests in listing.items():
            for m in manifests:
                print(f"{host:20} {m['id']:40} {m['started']:21} {m['size'] / (1 << 20):9.1f} MiB")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgharbor-backup-server", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.environ.get("PGHARBOR_BACKUP_SERVER_CONFIG", BACKUP_SERVER_CONFIG))
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="take in arrivals, then apply retention")
    run.add_argument("--dry-run", action="store_true", help="say what retention would remove, remove nothing")
    listing = sub.add_parser("list", help="the stored backups")
    listing.add_argument("--host")
    listing.add_argument("--json", action="store_true")
    status = sub.add_parser("status", help="health per DB host; exit 1 when unhealthy")
    status.add_argument("--json", action="store_true")
    status.add_argument("--tier", action="append", choices=TIERS,
                        help="only this tier (again for more): tier 3's listing may run less often than tier 2's")
    add_prometheus_option(status)
    pulling = sub.add_parser("pull", help="a snapshot of each DB host's time-travel repository, then retention")
    pulling.add_argument("--host")
    return p


COMMANDS = {"run": cmd_run, "list": cmd_list, "status": cmd_status, "pull": cmd_pull}


def main(argv: list[str] | None = None) -> int:
    return run_command(parser(), argv, COMMANDS, ("root", "backup_server_root"))


if __name__ == "__main__":
    sys.exit(main())
