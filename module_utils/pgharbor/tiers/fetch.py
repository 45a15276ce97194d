"""Finding the backup to restore or verify in the nearest tier that has it.

Tiers are tried in the order given (tier 1 on the DB host first, then the
backup server, then the bucket); a tier that is down, or does not hold the
backup asked for, is skipped with its reason, and the next one is tried. A
backup from tier 2 or 3 is copied next to tier 1 (into <directory>/.fetched,
on the same disk) and its SHA-256 checked against its manifest; it is
removed again when the caller is done.

Tier 2 is read with a restore key that the backup server authorizes for
`rrsync -ro` on the host's store (backup_server_clients[].restore_public_key),
given at run time from the vault: the DB host's own key may only write.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..backup.manifest import MANIFEST_SUFFIX, Manifest, ManifestError
from ..backup.store import Backup, Store, StoreError, choose
from ..errors import PgharborError
from .intake import sha256_of
from .s3settings import S3Error, S3Settings
from .ssh import ShipError, SshTarget, run_rsync

FETCHED = ".fetched"
TIERS = ("tier1", "tier2", "tier3")


class FetchError(PgharborError, RuntimeError):
    pass


@dataclass
class Sources:
    directory: str
    order: list[str] = field(default_factory=lambda: ["tier1"])
    # tier 2 as the restore key reaches it (identity: the restore key's file)
    tier2: SshTarget | None = None
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
        raise FetchError(f"tiers: unknown tier(s) {', '.join(unknown)}; use {', '.join(TIERS)}")
    skipped: list[str] = []
    for tier in sources.order:
        scratch = None
        try:
            if tier == "tier1":
                found = Found(Store(sources.directory).choose(which), tier, skipped)
            else:
                scratch = Path(sources.directory) / FETCHED
                shutil.rmtree(scratch, ignore_errors=True)
                scratch.mkdir(mode=0o700)
                fetch = _from_backup_server if tier == "tier2" else _from_bucket
                found = Found(fetch(which, sources, scratch), tier, skipped)
        except (StoreError, S3Error, ShipError, OSError) as exc:
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
    from .s3 import S3Store  # boto3 only where tier 3 is read
    bucket = S3Store(sources.tier3)
    stored = choose(bucket.backups(), which, sources.tier3.where())
    return bucket.download(stored, scratch)


def _from_backup_server(which: str, sources: Sources, scratch: Path) -> Backup:
    target = sources.tier2
    if target is None:
        raise ShipError("not configured (pg_backup_tier2) or no restore key given")
    remote = f"{target.user}@{target.host}:"
    manifests = scratch / "manifests"
    manifests.mkdir()
    # every manifest in one transfer (filters travel inside rsync's protocol)
    run_rsync(target, ["--recursive", "--include", f"*{MANIFEST_SUFFIX}", "--exclude", "*", remote,
                       f"{manifests}/"], f"reading the manifests on {target.where()}")
    candidates = []
    for path in sorted(manifests.glob(f"*{MANIFEST_SUFFIX}")):
        try:
            candidates.append(Backup(Manifest.from_json(path.read_text()), scratch / "-", path))
        except (ManifestError, UnicodeDecodeError):
            continue
    chosen = choose(sorted(candidates, key=lambda b: (b.manifest.started, b.id)), which,
                    f"the backup server {target.where()}")
    artefact = scratch / chosen.manifest.artefact
    run_rsync(target, [f"{remote}{chosen.manifest.artefact}", str(artefact)],
              f"copying {chosen.manifest.artefact} from {target.where()}")
    found = sha256_of(artefact)
    if found != chosen.manifest.sha256:
        raise ShipError(f"{chosen.manifest.artefact} on {target.where()} does not match its manifest (sha256 {found}, "
                        f"manifest {chosen.manifest.sha256}): the stored copy is damaged; take the backup from another "
                        "tier")
    manifest_path = scratch / chosen.manifest_path.name
    chosen.manifest_path.rename(manifest_path)
    return Backup(chosen.manifest, artefact, manifest_path)
