"""The health of one tier: what is there, how old the newest backup is,
how the last run and the last verification went, and what makes it
unhealthy. The same report for a directory (tier 1, tier 2's store) and a
bucket (tier 3), so that the tiers can be shown side by side and compared."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ..backup.manifest import Manifest
from ..backup.store import Store

if TYPE_CHECKING:  # boto3 is needed only where tier 3 is read
    from .s3 import S3Store


def summary(manifests: Sequence[Manifest], where: str, max_age_hours: float, now: datetime,
            max_age_setting: str) -> dict:
    """manifests oldest first."""
    newest = manifests[-1] if manifests else None
    age = (now - newest.started_at).total_seconds() if newest else None
    problems = []
    if newest is None:
        problems.append(f"no backup in {where}")
    elif age is not None and age > max_age_hours * 3600:
        problems.append(f"the newest backup is {age / 3600:.1f} h old, more than {max_age_hours:g} h "
                        f"({max_age_setting})")
    return {
        "where": where, "count": len(manifests), "bytes": sum(m.size for m in manifests),
        "newest": newest.id if newest else None, "newest_age_seconds": round(age) if age is not None else None,
        "oldest": manifests[0].id if manifests else None,
        "backups": [{"id": m.id, "started": m.started, "size": m.size, "sha256": m.sha256} for m in manifests],
        "problems": problems, "healthy": not problems,
    }


def tier_health(directory: str, max_age_hours: float, now: datetime,
                max_age_setting: str = "pg_backup_max_age_hours") -> dict:
    store = Store(directory)
    report = summary([b.manifest for b in store.backups()], str(store.root), max_age_hours, now, max_age_setting)
    last_run = store.read_status()
    problems = report["problems"]
    if last_run and last_run.get("result") != "ok":
        problems.insert(0, f"the last run failed: {last_run.get('error')}")
    for tier, shipped in sorted(((last_run or {}).get("shipping") or {}).items()):
        if shipped.get("error"):
            problems.append(f"the last shipment to {tier} failed ({shipped.get('pending', '?')} backup(s) pending): "
                            f"{shipped['error']}")
    report.update(directory=str(store.root), last_run=last_run, last_verification=store.last_verification(),
                  healthy=not problems)
    return report


def bucket_health(bucket: S3Store, max_age_hours: float, now: datetime, max_age_setting: str) -> dict:
    return summary([b.manifest for b in bucket.backups()], bucket.settings.where(), max_age_hours, now,
                   max_age_setting)
