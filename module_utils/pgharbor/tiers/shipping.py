"""Shipping tier-1 backups to the other tiers: every complete backup a tier
has not received yet, oldest first, recorded per tier in the tier-1
directory (.shipped.json). A tier that fails stops its own queue (the next
run resumes it) but not the other tiers'."""

from __future__ import annotations

from collections.abc import Callable

from ..backup.manifest import now_text
from ..backup.store import Backup, Store
from .s3settings import S3Error
from .ssh import ShipError


def forget(store: Store, tier: str, backup_ids: list[str]) -> list[Backup]:
    """Make the next shipment send these backups to tier again (what a
    tier misses, found by comparing the tiers); returns them."""
    backups = {b.id: b for b in store.backups()}
    unknown = [i for i in backup_ids if i not in backups]
    if unknown:
        raise ShipError(f"not in {store.root}: {', '.join(unknown)} (see: pgharbor-backup list)")
    store.forget_shipped(set(backup_ids), tier)
    return [backups[i] for i in backup_ids]


def pending(store: Store, tier: str) -> list[Backup]:
    done = store.shipped().get(tier, {})
    return [b for b in store.backups() if b.id not in done]


def ship_pending(store: Store, shippers: dict[str, Callable[[Backup], dict]]) -> dict[str, dict]:
    results = {}
    for tier, ship in shippers.items():
        shipped, error = [], ""
        for backup in pending(store, tier):
            try:
                info = ship(backup)
            except (ShipError, S3Error) as exc:
                error = str(exc)
                break
            store.record_shipped(tier, backup.id, {**info, "at": now_text()})
            shipped.append(backup.id)
        results[tier] = {"shipped": shipped, "error": error, "pending": len(pending(store, tier))}
    return results
