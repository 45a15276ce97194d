"""The health of a backup directory: what is there, how old the newest
backup is, how the last run and the last verification went, and what makes
it unhealthy."""

from __future__ import annotations

from datetime import datetime

from .store import Store


def tier_health(directory: str, max_age_hours: float, now: datetime,
                max_age_setting: str = "pg_backup_max_age_hours") -> dict:
    store = Store(directory)
    backups = store.backups()
    last_run = store.read_status()
    newest = backups[-1].manifest if backups else None
    age = (now - newest.started_at).total_seconds() if newest else None
    problems = []
    if last_run and last_run.get("result") != "ok":
        problems.append(f"the last run failed: {last_run.get('error')}")
    if newest is None:
        problems.append(f"no backup in {store.root}")
    elif age is not None and age > max_age_hours * 3600:
        problems.append(f"the newest backup is {age / 3600:.1f} h old, more than {max_age_hours:g} h "
                        f"({max_age_setting})")
    for tier, shipped in sorted(((last_run or {}).get("shipping") or {}).items()):
        if shipped.get("error"):
            problems.append(f"the last shipment to {tier} failed ({shipped.get('pending', '?')} backup(s) pending): "
                            f"{shipped['error']}")
    return {
        "directory": str(store.root), "count": len(backups), "bytes": sum(b.manifest.size for b in backups),
        "newest": newest.id if newest else None, "newest_age_seconds": round(age) if age is not None else None,
        "oldest": backups[0].id if backups else None, "last_run": last_run,
        "last_verification": store.last_verification(), "healthy": not problems, "problems": problems,
    }
