"""pgharbor-backup: the backup agent's command line on the DB host.

    pgharbor-backup run       take a backup now and ship it (what the timer runs)
    pgharbor-backup ship      ship to a tier the backups it misses (status.yml names them)
    pgharbor-backup list      the complete backups in the directory
    pgharbor-backup verify    check a backup (checksum; readable and restore with the private key)
    pgharbor-backup status    the last run, the newest backup's age; exit 1 when unhealthy

Settings come from a JSON file written by the pg_backup role
(/etc/pgharbor/backup.json); each key is the role variable without its
pg_backup_ prefix.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from ..backup.store import Store
from ..backup.take import BackupError
from ..backup.verify import LEVELS, VerifyError, verify
from ..common.gauges import exposition
from ..common.settings import BACKUP_CONFIG
from ..tiers.health import tier_health
from ..tiers.report import tier_gauges
from ..tiers.shipping import forget, ship_pending
from .agent import ShippingFailed, acting_here, run_backup, settings_from, shippers_for
from .command import acting_gauge, add_prometheus_option, run_command, status_elsewhere, write_gauges

MIB = 1 << 20


def _progress_printer(stream: TextIO) -> Callable[[int], None]:
    begin = time.monotonic()
    last = [0.0]

    def show(written: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 1:
            last[0] = now
            rate = written / MIB / max(now - begin, 1e-6)
            stream.write(f"\r{written / MIB:10.1f} MiB written, {rate:6.1f} MiB/s, {now - begin:6.0f} s")
            stream.flush()
    return show


def cmd_run(config: dict, args: argparse.Namespace) -> int:
    settings = settings_from(config)
    here = acting_here(settings.conninfo, settings.cluster_member)
    if not here.acting:
        print(f"no backup: {here.reason}")
        return 0
    progress = _progress_printer(sys.stderr) if sys.stderr.isatty() else None
    failed = ""
    try:
        run = run_backup(settings, progress)
    except ShippingFailed as exc:
        run, failed = exc.run, str(exc)
    except BackupError as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    if progress:
        sys.stderr.write("\n")
    manifest = run.manifest
    print(f"backup {manifest.id}: {manifest.size} bytes, {len(manifest.tables)} tables, "
          f"{manifest.total_rows} rows, sha256 {manifest.sha256}")
    for tier, result in run.shipping.items():
        print(f"{tier}: shipped {', '.join(result['shipped']) or 'nothing'}"
              + (f"; FAILED: {result['error']}" if result["error"] else ""))
    removed = [d["id"] for d in run.retention if not d["keep"]]
    if removed:
        print(f"tier1 retention removed {', '.join(removed)}")
    if failed:
        print(f"shipping failed: {failed}", file=sys.stderr)
        return 1
    return 0


def cmd_ship(config: dict, args: argparse.Namespace) -> int:
    """Ship what a tier misses (status.yml names the backups): forgotten as
    shipped, then shipped by a run's own shipping step, under the lock."""
    settings = settings_from(config)
    store = Store(settings.directory)
    shippers = {tier: ship for tier, ship in shippers_for(settings).items() if tier in args.tier}
    missing = sorted(set(args.tier) - set(shippers))
    if missing:
        print(f"not configured here: {', '.join(missing)} (pg_backup_{'/'.join(missing)})", file=sys.stderr)
        return 2
    with store.lock():
        for tier in shippers:
            forget(store, tier, args.backup or [])
        results = ship_pending(store, shippers)
    for tier, result in results.items():
        print(f"{tier}: shipped {', '.join(result['shipped']) or 'nothing'}"
              + (f"; FAILED: {result['error']}" if result["error"] else ""))
    return 1 if any(r["error"] for r in results.values()) else 0


def cmd_list(config: dict, args: argparse.Namespace) -> int:
    backups = Store(config["directory"]).backups()
    if args.json:
        print(json.dumps([asdict(b.manifest) for b in backups], indent=2))
        return 0
    print(f"{'id':40} {'started':21} {'size MiB':>9} {'tables':>6} {'rows':>12}")
    for b in backups:
        m = b.manifest
        print(f"{m.id:40} {m.started:21} {m.size / MIB:9.1f} {len(m.tables):6} {m.total_rows:12}")
    return 0


def cmd_verify(config: dict, args: argparse.Namespace) -> int:
    store = Store(config["directory"])
    backup = store.choose(args.backup)
    key = Path(args.private_key_file).read_text() if args.private_key_file else os.environ.get("PGHARBOR_PRIVATE_KEY")
    passphrase = os.environ.get("PGHARBOR_PASSPHRASE")
    try:
        record = verify(backup, args.level, private_key=key, passphrase=passphrase, server=args.server)
    except VerifyError as exc:
        _note(store, exc.verification.as_dict())
        print(str(exc), file=sys.stderr)
        return 1
    _note(store, record.as_dict())
    print(f"backup {backup.id}: {', '.join(record.passed)} passed in {record.seconds} s")
    return 0


def _note(store: Store, record: dict) -> None:
    try:
        store.record_verification(record)
    except OSError as exc:
        print(f"could not record the verification in {store.root}: {exc}", file=sys.stderr)


def cmd_status(config: dict, args: argparse.Namespace) -> int:
    host = config.get("server_name") or os.uname().nodename

    def acting(here: bool) -> list[str]:
        return acting_gauge("pgharbor_backup_acting", "1 where this server takes the logical backups (in a "
                            "cluster, the member pg_backup_cluster_member chose)", host, here)

    if config.get("db"):
        # in a cluster, a member that does not back up: its tier 1 is not expected to be fresh
        elsewhere = status_elsewhere(lambda: acting_here(config["db"], config.get("cluster_member", "primary")),
                                     args, acting, "no backups here")
        if elsewhere is not None:
            return elsewhere
    report = tier_health(config["directory"], float(config.get("max_age_hours", 2)), datetime.now(timezone.utc))
    if args.prometheus:
        write_gauges(args.prometheus, exposition(tier_gauges([(host, "tier1", report)]) + acting(True)))
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        age = report["newest_age_seconds"]
        print(f"directory:   {report['directory']}")
        print(f"backups:     {report['count']} ({report['bytes'] / MIB:.1f} MiB)")
        print(f"newest:      {report['newest'] or '-'}" + (f" ({age / 60:.0f} min old)" if age is not None else ""))
        last = report["last_run"] or {}
        print(f"last run:    {last.get('result', 'never')} {last.get('started', '')}")
        for tier, shipped in sorted((last.get("shipping") or {}).items()):
            print(f"{tier + ':':12} " + ("FAILED, " if shipped.get("error") else "ok, ")
                  + f"{shipped.get('pending', 0)} pending")
        verified = report["last_verification"] or {}
        print(f"verified:    {verified.get('backup', '-')} {verified.get('level', '')} {verified.get('started', '')}")
        print("health:      " + ("ok" if report["healthy"] else "FAILING: " + "; ".join(report["problems"])))
    return 0 if report["healthy"] else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgharbor-backup", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=os.environ.get("PGHARBOR_BACKUP_CONFIG", BACKUP_CONFIG))
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="take a backup now")
    ship = sub.add_parser("ship", help="ship to a tier what it misses (and whatever is pending)")
    ship.add_argument("--tier", action="append", required=True, choices=["tier2", "tier3"])
    ship.add_argument("--backup", action="append", help="a backup id the tier misses (repeat for more)")
    listing = sub.add_parser("list", help="list the complete backups")
    listing.add_argument("--json", action="store_true")
    check = sub.add_parser("verify", help="verify a backup")
    check.add_argument("--backup", default="latest", help="a backup id, latest, or before:<ISO time>")
    check.add_argument("--level", choices=list(LEVELS), default="checksum")
    check.add_argument("--private-key-file", help="the armored private key (or env PGHARBOR_PRIVATE_KEY); "
                                                  "passphrase in env PGHARBOR_PASSPHRASE")
    check.add_argument("--server", help="level restore: conninfo of a role that may create databases")
    status = sub.add_parser("status", help="health of the backups; exit 1 when unhealthy")
    status.add_argument("--json", action="store_true")
    add_prometheus_option(status)
    return p


COMMANDS = {"run": cmd_run, "ship": cmd_ship, "list": cmd_list, "verify": cmd_verify, "status": cmd_status}


def main(argv: list[str] | None = None) -> int:
    return run_command(parser(), argv, COMMANDS, ("directory", "pg_backup_directory"))


if __name__ == "__main__":
    sys.exit(main())
