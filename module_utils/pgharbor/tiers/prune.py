"""Retention applied to a tier: a directory (tier 1 on the DB host, tier 2's
store on the backup server) or a bucket (tier 3). dry_run decides and
explains without removing anything."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from ..backup.store import Backup, Busy, Store
from .retention import Candidate, Decision, Policy, decide

if TYPE_CHECKING:  # boto3 is needed only where tier 3 is used
    from .s3 import S3Store


def prune_store(store: Store, policy: Policy, now: datetime, *, dry_run: bool,
                holds: Callable[[Backup], list[str]] = lambda _: [], all_verified: bool = False) -> list[Decision]:
    """all_verified: every backup in the directory was checked on its way in
    (tier 2's intake); otherwise the verification log says which were."""
    backups = {b.id: b for b in store.backups()}
    verified = set(backups) if all_verified else store.verified_ids()
    candidates = []
    for b in backups.values():
        held = list(holds(b))
        if store.in_use(b):
            held.append("being read by a restore or a verification")
        candidates.append(Candidate(b.id, b.manifest.started_at, b.id in verified, tuple(held)))
    decisions = decide(candidates, policy, now)
    if not dry_run:
        for decision in decisions:
            if not decision.keep:
                try:
                    store.remove(backups[decision.id])
                except Busy as exc:  # a reader arrived after the decision
                    decision.keep, decision.reasons = True, [str(exc)]
        store.forget_shipped({d.id for d in decisions if not d.keep})
    return decisions


def prune_bucket(bucket: S3Store, policy: Policy, now: datetime, *, dry_run: bool) -> list[Decision]:
    """Every backup in the bucket went up whole with its checksums compared,
    so each counts as verified. A deletion the bucket refuses (Object Lock,
    a policy) is reported as kept, with S3's reason."""
    from .s3settings import S3Error
    stored = {b.id: b for b in bucket.backups()}
    decisions = decide([Candidate(b.id, b.manifest.started_at, True) for b in stored.values()], policy, now)
    if not dry_run:
        for decision in decisions:
            if not decision.keep:
                try:
                    bucket.delete(stored[decision.id])
                except S3Error as exc:
                    decision.keep, decision.reasons = True, [str(exc)]
    return decisions
