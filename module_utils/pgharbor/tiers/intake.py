"""Tier 2, on the backup server: what the DB hosts shipped into their
incoming directories becomes a backup only once it has been checked.

For each manifest in an incoming directory whose artefact has arrived
whole, the artefact's SHA-256 is computed here and compared with the
manifest. A match moves the artefact, then the manifest, into the host's
store (outside the DB host's reach); a mismatch moves both into quarantine
and is reported. rsync's own temporary files (dot-names) are not looked at.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..backup.manifest import MANIFEST_SUFFIX, Manifest, ManifestError, now_text
from ..common.atomicfile import fsync_dir

INTAKE_LOG = ".intake-log.jsonl"
READ_CHUNK = 4 * 1024 * 1024


@dataclass
class Arrival:
    backup: str
    result: str  # stored | duplicate | quarantined | waiting
    detail: str = ""
    at: str = ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def take_in(incoming: Path, store: Path, quarantine: Path) -> list[Arrival]:
    """Check and move everything complete in incoming; returns what happened
    to each backup, and appends it to the store's intake log."""
    arrivals = []
    for manifest_path in sorted(p for p in incoming.glob("*" + MANIFEST_SUFFIX) if not p.name.startswith(".")):
        arrivals.append(_take_one(manifest_path, store, quarantine))
    done = [a for a in arrivals if a.result != "waiting"]
    if done:
        with open(store / INTAKE_LOG, "a") as log:
            for arrival in done:
                log.write(json.dumps(asdict(arrival), sort_keys=True) + "\n")
    return arrivals


def _take_one(manifest_path: Path, store: Path, quarantine: Path) -> Arrival:
    incoming = manifest_path.parent
    try:
        manifest = Manifest.from_json(manifest_path.read_text())
    except (ManifestError, UnicodeDecodeError, OSError) as exc:
        _move(manifest_path, quarantine)
        return Arrival(manifest_path.name, "quarantined", f"manifest unreadable: {exc}", now_text())
    artefact = incoming / manifest.artefact
    if not artefact.is_file() or artefact.stat().st_size < manifest.size:
        # the manifest is shipped last, so this is a re-shipment or a damaged transfer; wait for the artefact
        return Arrival(manifest.id, "waiting", f"{manifest.artefact} not complete yet")
    found = sha256_of(artefact)
    if found != manifest.sha256 or artefact.stat().st_size != manifest.size:
        for path in (artefact, manifest_path):
            _move(path, quarantine)
        return Arrival(manifest.id, "quarantined",
                       f"sha256 {found} does not match the manifest's {manifest.sha256}: the shipped artefact is "
                       f"damaged; kept in {quarantine}", now_text())
    stored = store / manifest.artefact
    if (store / manifest_path.name).exists():
        if stored.is_file() and sha256_of(stored) == found:
            for path in (artefact, manifest_path):
                path.unlink()
            return Arrival(manifest.id, "duplicate", "already stored, identical", now_text())
        for path in (artefact, manifest_path):
            _move(path, quarantine)
        return Arrival(manifest.id, "quarantined", "a different backup with this id is already stored", now_text())
    os.rename(artefact, stored)
    fsync_dir(store)
    os.rename(manifest_path, store / manifest_path.name)
    fsync_dir(store)
    return Arrival(manifest.id, "stored", f"sha256 {found} checked", now_text())


def _move(path: Path, directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / path.name
    if target.exists():
        target = directory / f"{path.name}.{os.getpid()}-{now_text().replace(':', '')}"
    os.rename(path, target)


def last_arrivals(store: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in (store / INTAKE_LOG).read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []
