"""A directory of backups (tier 1 on the DB host): listing, locking, writing.

Only complete backups are listed: a manifest that parses and names an
artefact that exists with the recorded size. Everything else is either being
written (.partial) or debris of a crash, which the next run removes under
the lock.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Protocol, TypeVar

from ..common.atomicfile import replace_file
from ..errors import PgharborError
from .manifest import ARTEFACT_SUFFIX, MANIFEST_SUFFIX, PARTIAL_SUFFIX, Manifest, ManifestError, parse_utc

LOCK_NAME = ".lock"
STATUS_NAME = ".last-run.json"
VERIFY_LOG = ".verify-log.jsonl"
SHIPPED_NAME = ".shipped.json"


class StoreError(PgharborError, RuntimeError):
    pass


class Busy(StoreError):
    pass


@dataclass(frozen=True)
class Backup:
    manifest: Manifest
    artefact: Path
    manifest_path: Path

    @property
    def id(self) -> str:
        return self.manifest.id


@contextmanager
def reading(backup: Backup) -> Iterator[None]:
    """Held while a restore or a verification reads the artefact: retention
    does not remove a backup that is being read (see Store.remove)."""
    fd = os.open(backup.artefact, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


B = TypeVar("B", bound="HasManifest")


class HasManifest(Protocol):
    @property
    def manifest(self) -> Manifest: ...

    @property
    def id(self) -> str: ...


def choose(backups: Sequence[B], which: str, where: str) -> B:
    """From complete backups (oldest first): latest, a backup id, or
    before:<ISO time> (the newest backup that started before that time; a
    time without a zone is UTC). where names the tier in messages."""
    if which.startswith("before:"):
        try:
            limit = parse_utc(which.removeprefix("before:"))
        except ValueError:
            raise StoreError(f"{which!r}: give before:<ISO time>, for example before:2026-11-24T10:00:00Z") from None
        if limit.tzinfo is None:
            limit = limit.replace(tzinfo=timezone.utc)
        earlier = [b for b in backups if b.manifest.started_at < limit]
        if not earlier:
            raise StoreError(f"no complete backup in {where} started before {limit.isoformat()}")
        return earlier[-1]
    if which == "latest":
        if not backups:
            raise StoreError(f"no complete backup in {where}")
        return backups[-1]
    for backup in backups:
        if backup.id == which:
            return backup
    raise StoreError(f"no complete backup {which!r} in {where} (see: pgharbor-backup list)")


class HashingWriter:
    """Writes chunks to a new .partial file, hashing them on the way; the
    file gets its final name only in publish(), after an fsync."""

    def __init__(self, final: Path):
        self.final = final
        self.partial = final.with_name(final.name + PARTIAL_SUFFIX)
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def __call__(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise StoreError(f"no space left in {self.final.parent} after {self.size} bytes: free space "
                                     "or point pg_backup_directory at a larger disk") from exc
                raise
            self.sha256.update(view[:written])
            self.size += written
            view = view[written:]

    def publish(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        os.rename(self.partial, self.final)

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.partial.unlink(missing_ok=True)


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def check(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"backup directory {self.root} does not exist: create it (the pg_backup role does) "
                             "or fix pg_backup_directory")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreError(f"backup directory {self.root} is not writable by this user (uid {os.getuid()})")

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time. flock is released by the kernel when the
        process dies, so a killed backup never leaves a stale lock."""
        fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                raise Busy(f"another backup is running in {self.root} (pid {holder}); "
                           "wait for it, or look at: pgharbor-backup status") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def artefact_path(self, backup_id: str) -> Path:
        return self.root / (backup_id + ARTEFACT_SUFFIX)

    def manifest_path(self, backup_id: str) -> Path:
        return self.root / (backup_id + MANIFEST_SUFFIX)

    def writer(self, backup_id: str) -> HashingWriter:
        return HashingWriter(self.artefact_path(backup_id))

    def publish_manifest(self, manifest: Manifest) -> Path:
        path = self.manifest_path(manifest.id)
        replace_file(path, manifest.to_json())
        return path

    def backups(self, database: str | None = None) -> list[Backup]:
        """Complete backups, oldest first."""
        found = []
        for path in self.root.glob("*" + MANIFEST_SUFFIX):
            try:
                manifest = Manifest.from_json(path.read_text())
            except (ManifestError, OSError, UnicodeDecodeError):
                continue
            artefact = self.root / manifest.artefact
            try:
                if artefact.stat().st_size != manifest.size:
                    continue
            except FileNotFoundError:
                continue
            if database is None or manifest.database == database:
                found.append(Backup(manifest, artefact, path))
        return sorted(found, key=lambda b: (b.manifest.started, b.id))

    def choose(self, which: str) -> Backup:
        return choose(self.backups(), which, str(self.root))

    def in_use(self, backup: Backup) -> bool:
        try:
            fd = os.open(backup.artefact, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def remove(self, backup: Backup) -> None:
        """Manifest first (a backup half removed is no backup), then the
        artefact; refused while a reader holds the artefact."""
        fd = os.open(backup.artefact, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(f"{backup.id} is being read (a restore or a verification): not removed") from None
            backup.manifest_path.unlink()
            backup.artefact.unlink()
        finally:
            os.close(fd)

    def debris(self) -> list[Path]:
        """Files no complete backup accounts for: .partial files, artefacts
        without a manifest. Only meaningful while holding the lock."""
        complete = {p for b in self.backups() for p in (b.artefact, b.manifest_path)}
        return sorted(p for p in self.root.iterdir()
                      if p.is_file() and not p.name.startswith(".") and p not in complete
                      and (p.name.endswith(PARTIAL_SUFFIX) or p.name.endswith(ARTEFACT_SUFFIX)))

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def write_status(self, status: dict) -> None:
        replace_file(self.root / STATUS_NAME, json.dumps(status, indent=2, sort_keys=True) + "\n", mode=0o644)

    def read_status(self) -> dict | None:
        try:
            return json.loads((self.root / STATUS_NAME).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def record_verification(self, record: dict) -> None:
        with open(self.root / VERIFY_LOG, "a") as log:
            log.write(json.dumps(record, sort_keys=True) + "\n")

    def verified_ids(self) -> set[str]:
        """Backups that passed a verification at any level."""
        try:
            lines = (self.root / VERIFY_LOG).read_text().splitlines()
        except FileNotFoundError:
            return set()
        return {record.get("backup") for record in map(json.loads, lines) if record.get("ok")}

    def shipped(self) -> dict[str, dict[str, dict]]:
        """Per tier, the backups shipped there and how: {tier: {id: info}}."""
        try:
            return json.loads((self.root / SHIPPED_NAME).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def record_shipped(self, tier: str, backup_id: str, info: dict) -> None:
        shipped = self.shipped()
        shipped.setdefault(tier, {})[backup_id] = info
        replace_file(self.root / SHIPPED_NAME, json.dumps(shipped, indent=1, sort_keys=True) + "\n", mode=0o644)

    def forget_shipped(self, backup_ids: set[str], tier: str | None = None) -> None:
        """Drop the records of these backups (for one tier, or all): removed
        backups, or ones a tier misses and must receive again."""
        shipped = self.shipped()
        pruned = {t: {k: v for k, v in ids.items() if k not in backup_ids or (tier is not None and t != tier)}
                  for t, ids in shipped.items()}
        if pruned != shipped:
            replace_file(self.root / SHIPPED_NAME, json.dumps(pruned, indent=1, sort_keys=True) + "\n", mode=0o644)

    def last_verification(self) -> dict | None:
        """The newest verification that passed."""
        try:
            lines = (self.root / VERIFY_LOG).read_text().splitlines()
        except FileNotFoundError:
            return None
        passed = [record for record in map(json.loads, lines) if record.get("ok")]
        return passed[-1] if passed else None
