"""One DB host's backups across the three tiers: whether the tiers agree,
the recovery point and the last measured recovery time, a readable table and
Prometheus metrics (node_exporter's textfile collector), for both layers.

Input: the per-tier reports of health.py (tier1 from the DB host, tier2 from
the backup server, tier3 from the bucket), any of which may be missing; and,
where time travel runs, the DB host's `pgharbor-timetravel status --json`
(repo1 is tier 1, repo2 tier 3) and the backup server's report of its pulled
snapshots (tier 2)."""

from __future__ import annotations

from datetime import datetime, timezone

from ..backup.manifest import parse_utc
from ..common.gauges import exposition, gauge, label
from .retention import Candidate, Policy, PolicyError, decide

TIERS = ("tier1", "tier2", "tier3")


def disagreements(reports: dict[str, dict], now: datetime) -> tuple[list[str], dict[str, list[str]]]:
    """(problems, {tier: ids tier 1 holds that the tier should hold but misses}).

    The same id must have the same SHA-256 everywhere. A tier-1 backup is
    missing from another tier when it is older than that tier's newest (so
    not merely on its way) and that tier would keep it: by its retention
    policy when the report carries one (a backup server keeping one a day
    does not miss the hourly ones), else when it is newer than the tier's
    oldest."""
    problems: list[str] = []
    missing: dict[str, list[str]] = {}
    by_tier = {tier: {b["id"]: b for b in r.get("backups", [])} for tier, r in reports.items()}
    seen: dict[str, tuple[str, str]] = {}
    for tier in TIERS:
        for bid, b in sorted(by_tier.get(tier, {}).items()):
            if bid in seen and seen[bid][1] != b["sha256"]:
                problems.append(f"{bid}: sha256 differs between {seen[bid][0]} and {tier}: one copy is damaged; "
                                "verify both (pgharbor-backup verify, the restore drill)")
            seen.setdefault(bid, (tier, b["sha256"]))
    first = by_tier.get("tier1", {})
    for tier in TIERS[1:]:
        other = by_tier.get(tier)
        if not other:
            continue
        gone = sorted(bid for bid, b in first.items()
                      if bid not in other and _should_hold(reports[tier], other, b, now))
        if gone:
            missing[tier] = gone
            problems.append(f"{tier} misses {len(gone)} backup(s) that tier 1 holds ({', '.join(gone)}): ship them "
                            f"again with: pgharbor-backup ship --tier {tier} "
                            + " ".join(f"--backup {g}" for g in gone))
    return problems, missing


def _should_hold(report: dict, held: dict[str, dict], backup: dict, now: datetime) -> bool:
    if backup["started"] >= max(b["started"] for b in held.values()):
        return False  # newer than the tier's newest: still on its way (the shipping status says so)
    try:
        policy = Policy.from_dict(report["retention"], "retention") if report.get("retention") else None
    except PolicyError:
        policy = None
    if policy is None:
        return backup["started"] > min(b["started"] for b in held.values())
    candidates = [Candidate(b["id"], parse_utc(b["started"]), True) for b in (*held.values(), backup)]
    return any(d.keep and d.id == backup["id"] for d in decide(candidates, policy, now))


def _snapshot_time(name: str | None) -> str | None:
    """A pulled snapshot's name is its UTC time (tiers/pull.py): 20261209T140503Z."""
    if not name:
        return None
    return datetime.strptime(name, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).isoformat()


def timetravel_report(db: dict, tier2: dict | None) -> dict:
    """The time-travel layer per tier: each repository's backups, restorable window, RPO now (its
    newest archived WAL's age, 0 when nothing was written since), last verify and last drill; tier 2's
    snapshots, whose RPO is the newest snapshot's age and whose window runs at least from the oldest
    snapshot to the newest."""
    tiers: dict[str, dict] = {}
    for r in db.get("repos", []):
        tiers[r["tier"]] = {"repo": r["repo"], "backups": r["backups"], "bytes": r["bytes"], "newest": r["newest"],
                            "window": r["window"], "rpo_seconds": r["rpo_seconds"],
                            "verify": r.get("verify"), "drill": r.get("drill"), "healthy": not r["problems"]}
    problems = [f"time travel: {p}" for p in db.get("problems", [])]
    if tier2:
        tiers["tier2"] = {"snapshots": tier2["snapshots"], "rpo_seconds": tier2["newest_age_seconds"],
                          "window": {"oldest": _snapshot_time(tier2["oldest"]),
                                     "newest": _snapshot_time(tier2["newest"])},
                          "healthy": tier2["healthy"]}
        problems += [f"time travel tier2: {p}" for p in tier2["problems"]]
    archiver = db.get("archiver") or {}
    return {"tiers": {t: tiers[t] for t in TIERS if t in tiers},
            "archiver": {k: archiver.get(k) for k in ("archived_count", "failed_count", "last_archived_time",
                                                      "last_failed_time", "last_failed_wal", "ready_segments",
                                                      "wal_bytes", "wal_free_bytes", "unarchived_wal")},
            "problems": problems, "healthy": not problems}


def host_report(host: str, reports: dict[str, dict], now: datetime, timetravel: dict | None = None) -> dict:
    """timetravel: None without the time-travel layer, else timetravel_report's."""
    problems, missing = disagreements(reports, now)
    ages = {tier: r["newest_age_seconds"] for tier, r in reports.items() if r.get("newest_age_seconds") is not None}
    offsite = [ages[t] for t in TIERS[1:] if t in ages]
    drill = (reports.get("tier1") or {}).get("last_verification") or {}
    rto = drill.get("restore_seconds") if drill.get("level") == "restore" else None
    unhealthy = [f"{tier}: {p}" for tier, r in reports.items() for p in r.get("problems", [])]
    return {
        "host": host, "checked": now.isoformat(timespec="seconds"), "tiers": reports,
        # what a loss now would cost: the newest backup anywhere, and the newest off the DB host
        "rpo_seconds": min(ages.values()) if ages else None,
        "offsite_rpo_seconds": min(offsite) if offsite else None,
        "rto_seconds": rto, "rto_measured": drill.get("started") if rto is not None else None,
        "missing": missing, "timetravel": timetravel,
        "problems": unhealthy + problems + (timetravel or {}).get("problems", []),
        "healthy": not (unhealthy or problems or (timetravel or {}).get("problems")),
    }


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def table(report: dict) -> str:
    lines = [f"{report['host']}: {'ok' if report['healthy'] else 'FAILING'}",
             f"  {'tier':6} {'backups':>7} {'size MiB':>9} {'newest':32} {'age':>8}  status"]
    for tier in TIERS:
        r = report["tiers"].get(tier)
        if r is None:
            continue
        lines.append(f"  {tier:6} {r['count']:7} {r['bytes'] / (1 << 20):9.1f} {r['newest'] or '-':32} "
                     f"{_age(r['newest_age_seconds']):>8}  {'ok' if r['healthy'] else 'FAILING'}")
    lines.append(f"  RPO now {_age(report['rpo_seconds'])} (off the DB host: {_age(report['offsite_rpo_seconds'])}); "
                 f"last measured RTO {report['rto_seconds'] if report['rto_seconds'] is not None else '-'} s")
    if report.get("timetravel"):
        lines.append(f"  time travel: {'tier':6} {'window from':25} {'to':25} {'RPO':>8}  last drill (RTO)")
        for tier, t in report["timetravel"]["tiers"].items():
            drill = t.get("drill")
            drilled = f"{drill['result']} {drill['started']} ({drill.get('rto_seconds')} s)" if drill else "-"
            lines.append(f"               {tier:6} {t['window']['oldest'] or '-':25} {t['window']['newest'] or '-':25} "
                         f"{_age(t['rpo_seconds']):>8}  {drilled}")
    lines += [f"  ! {p}" for p in report["problems"]]
    return "\n".join(lines)


METRICS = (
    ("pgharbor_backup_count", "Complete backups in the tier", lambda r: r["count"]),
    ("pgharbor_backup_bytes", "Bytes of complete backups in the tier", lambda r: r["bytes"]),
    ("pgharbor_backup_newest_age_seconds", "Age of the tier's newest backup", lambda r: r["newest_age_seconds"]),
    ("pgharbor_backup_tier_healthy", "1 when the tier is healthy", lambda r: int(r["healthy"])),
    ("pgharbor_backup_quarantined", "Files of arrivals that failed their check, in quarantine (tier 2)",
     lambda r: len(r["quarantined"]) if "quarantined" in r else None),
    ("pgharbor_backup_verified_timestamp_seconds", "Start of the newest verification a backup of the tier passed",
     lambda r: _epoch((r.get("last_verification") or {}).get("started"))),
    ("pgharbor_backup_verified_restore_seconds", "Restore time of that verification, when it restored (the RTO)",
     lambda r: (r.get("last_verification") or {}).get("restore_seconds")),
)


def _epoch(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


def _run_ok(run: dict | None) -> int | None:
    return int(run["result"] == "ok") if run else None


TIMETRAVEL_METRICS = (
    ("pgharbor_timetravel_rpo_seconds", "Age of the newest WAL the tier restores, 0 when the server wrote nothing "
     "since (tier 2: its newest snapshot's age)",
     lambda t: t["rpo_seconds"]),
    ("pgharbor_timetravel_window_oldest_timestamp_seconds", "Oldest time the tier restores to",
     lambda t: _epoch(t["window"]["oldest"])),
    ("pgharbor_timetravel_window_newest_timestamp_seconds", "Newest time the tier restores to",
     lambda t: _epoch(t["window"]["newest"])),
    ("pgharbor_timetravel_backups", "Backup sets in the repository (tier 2: pulled snapshots)",
     lambda t: t.get("backups", t.get("snapshots"))),
    ("pgharbor_timetravel_bytes", "Bytes in the repository", lambda t: t.get("bytes")),
    ("pgharbor_timetravel_verify_ok", "1 when the last pgbackrest verify found no damage",
     lambda t: _run_ok(t.get("verify"))),
    ("pgharbor_timetravel_verify_timestamp_seconds", "Start of the last verify",
     lambda t: _epoch((t.get("verify") or {}).get("started"))),
    ("pgharbor_timetravel_drill_ok", "1 when the last time-travel drill passed", lambda t: _run_ok(t.get("drill"))),
    ("pgharbor_timetravel_drill_timestamp_seconds", "Start of the last time-travel drill",
     lambda t: _epoch((t.get("drill") or {}).get("started"))),
    ("pgharbor_timetravel_drill_rto_seconds", "Restore time of the last time-travel drill",
     lambda t: (t.get("drill") or {}).get("rto_seconds")),
    ("pgharbor_timetravel_tier_healthy", "1 when the tier's time travel is healthy", lambda t: int(t["healthy"])),
)


def tier_gauges(rows: list[tuple[str, str, dict]]) -> list[str]:
    """The gauges of single tiers' health reports (health.py's), one row of (host, tier, report) each:
    what one writer sees (the DB host its tier 1, the backup server tier 2 of each DB host)."""
    out: list[str] = []
    for name, text, value in METRICS:
        gauge(out, name, text, [(f'host="{label(host)}",tier="{tier}"', value(r)) for host, tier, r in rows])
    return out


def timetravel_gauges(host: str, layer: dict) -> list[str]:
    """The gauges of one DB host's time-travel layer (timetravel_report's): per tier, and the archiver
    when the report comes from the DB host."""
    out: list[str] = []
    host = label(host)
    tt = list(layer["tiers"].items())
    for name, text, value in TIMETRAVEL_METRICS:
        gauge(out, name, text, [(f'host="{host}",tier="{tier}"', value(t)) for tier, t in tt])
    gauge(out, "pgharbor_timetravel_newest_backup_timestamp_seconds",
           "End of the newest backup of each type in the repository",
           [(f'host="{host}",tier="{tier}",type="{kind}"', _epoch(b["stop"]))
            for tier, t in tt for kind, b in (t.get("newest") or {}).items() if b])
    archiver = layer["archiver"]
    if any(v is not None for v in archiver.values()):
        failing = archiver["last_failed_time"] is not None and (
            archiver["last_archived_time"] is None or archiver["last_failed_time"] > archiver["last_archived_time"])
        gauge(out, "pgharbor_timetravel_archiver_failed_count", "pg_stat_archiver's failed_count",
               [(f'host="{host}"', archiver["failed_count"])])
        gauge(out, "pgharbor_timetravel_archiver_failing", "1 when archive_command failed since its last success",
               [(f'host="{host}"', int(failing))])
        for key, text in (("ready_segments", "Finished WAL segments waiting to be archived"),
                          ("wal_bytes", "Bytes in pg_wal"),
                          ("wal_free_bytes", "Free bytes on pg_wal's filesystem")):
            gauge(out, f"pgharbor_timetravel_{key}", text, [(f'host="{host}"', archiver[key])])
    return out


def prometheus(report: dict) -> str:
    """Text exposition format for node_exporter's textfile collector: host_report's whole report."""
    host = label(report["host"])
    tiers = [(report["host"], tier, report["tiers"][tier]) for tier in TIERS if tier in report["tiers"]]
    out = tier_gauges(tiers)
    for name, text_, key in (("pgharbor_backup_rpo_seconds", "Age of the newest backup in any tier", "rpo_seconds"),
                             ("pgharbor_backup_offsite_rpo_seconds", "Age of the newest backup off the DB host",
                              "offsite_rpo_seconds"),
                             ("pgharbor_backup_rto_seconds", "Restore time of the last restore drill",
                              "rto_seconds")):
        gauge(out, name, text_, [(f'host="{host}"', report[key])])
    gauge(out, "pgharbor_backup_healthy", "1 when every tier is healthy and the tiers agree",
           [(f'host="{host}"', int(report["healthy"]))])
    layer = report.get("timetravel")
    if layer:
        out += timetravel_gauges(report["host"], layer)
        gauge(out, "pgharbor_timetravel_healthy", "1 when every tier of the time-travel layer is healthy",
               [(f'host="{host}"', int(layer["healthy"]))])
    return exposition(out)
