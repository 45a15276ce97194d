"""One DB host's backups across the three tiers: whether the tiers agree,
the recovery point and the last measured recovery time, a readable table and
Prometheus metrics (node_exporter's textfile collector).

Input: the per-tier reports of health.py (tier1 from the DB host, tier2 from
the backup server, tier3 from the bucket), any of which may be missing."""

from __future__ import annotations

from datetime import datetime

from ..backup.manifest import parse_utc
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


def host_report(host: str, reports: dict[str, dict], now: datetime) -> dict:
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
        "missing": missing, "problems": unhealthy + problems, "healthy": not (unhealthy or problems),
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
    lines += [f"  ! {p}" for p in report["problems"]]
    return "\n".join(lines)


METRICS = (
    ("pgharbor_backup_count", "Complete backups in the tier", lambda r: r["count"]),
    ("pgharbor_backup_bytes", "Bytes of complete backups in the tier", lambda r: r["bytes"]),
    ("pgharbor_backup_newest_age_seconds", "Age of the tier's newest backup", lambda r: r["newest_age_seconds"]),
    ("pgharbor_backup_tier_healthy", "1 when the tier is healthy", lambda r: int(r["healthy"])),
)


def prometheus(report: dict) -> str:
    """Text exposition format for node_exporter's textfile collector."""
    host = report["host"].replace("\\", "\\\\").replace('"', '\\"')
    out = []
    for name, text, value in METRICS:
        out += [f"# HELP {name} {text}", f"# TYPE {name} gauge"]
        for tier in TIERS:
            r = report["tiers"].get(tier)
            if r is not None and value(r) is not None:
                out.append(f'{name}{{host="{host}",tier="{tier}"}} {value(r)}')
    for name, text, key in (("pgharbor_backup_rpo_seconds", "Age of the newest backup in any tier", "rpo_seconds"),
                            ("pgharbor_backup_offsite_rpo_seconds", "Age of the newest backup off the DB host",
                             "offsite_rpo_seconds"),
                            ("pgharbor_backup_rto_seconds", "Restore time of the last restore drill", "rto_seconds")):
        if report[key] is not None:
            out += [f"# HELP {name} {text}", f"# TYPE {name} gauge", f'{name}{{host="{host}"}} {report[key]}']
    out += ["# HELP pgharbor_backup_healthy 1 when every tier is healthy and the tiers agree",
            "# TYPE pgharbor_backup_healthy gauge",
            f'pgharbor_backup_healthy{{host="{host}"}} {int(report["healthy"])}']
    return "\n".join(out) + "\n"
