"""Finding the backup to restore or verify in the nearest tier that has it.

Tiers are tried in the order given (tier 1 on the DB host first, then the
bucket); a tier that is down, or does not hold the backup asked for, is
skipped with its reason, and the next one is tried. A backup from tier 3 is
downloaded next to tier 1 (into <directory>/.fetched, on the same disk),
its SHA-256 checked against its manifest on the way; it is removed again
when the caller is done.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .s3settings import S3Error, S3Settings
from .store import Backup, Store, StoreError, choose

FETCHED = ".fetched"
TIERS = ("tier1", "tier3")


class FetchError(RuntimeError):
    pass


@dataclass
class Sources:
    directory: str
    order: list[str] = field(default_factory=lambda: ["tier1"])
    tier3: S3Settings | None = None


@dataclass
class Found:
    backup: Backup
    tier: str
    # the tiers tried before, each with why it did not serve
    skipped: list[str]


@contextmanager
def fetched(which: str, sources: Sources) -> Iterator[Found]:
    """The backup asked for (latest, an id, before:<time>) from the first
    tier in sources.order that has it; a downloaded copy is removed on exit."""
    unknown = [t for t in sources.order if t not in TIERS]
    if unknown:
        raise FetchError(f"source: unknown tier(s) {', '.join(unknown)}; use {', '.join(TIERS)}")
    skipped: list[str] = []
    for tier in sources.order:
        scratch = None
        try:
            if tier == "tier1":
                found = Found(Store(sources.directory).choose(which), tier, skipped)
            else:
                scratch = Path(sources.directory) / FETCHED
                found = Found(_from_bucket(which, sources, scratch), tier, skipped)
        except (StoreError, S3Error, OSError) as exc:
            skipped.append(f"{tier}: {exc}")
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            continue
        try:
            yield found
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        return
    raise FetchError(f"backup {which!r} is in no tier that answered: " + "; ".join(skipped))


def _from_bucket(which: str, sources: Sources, scratch: Path) -> Backup:
    if sources.tier3 is None:
        raise S3Error("not configured (pg_backup_tier3) or no read credentials given")
    from .s3store import S3Store  # boto3 only where tier 3 is read
    bucket = S3Store(sources.tier3)
    stored = choose(bucket.backups(), which, sources.tier3.where())
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    return bucket.download(stored, scratch)
