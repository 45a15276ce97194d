"""Tier 2 of time travel: the backup server pulls dated snapshots of a DB
host's pgBackRest repository (repo1).

The DB host offers its repository through a read-only login (`rrsync -ro`,
a key that only the backup server holds, accepted from its address only):
the DB host pushes nothing here and holds no credential that reaches the
snapshots. The repository is encrypted (aes-256-cbc), so the backup server
keeps copies it cannot read; the passphrase stays with the DB host and the
vault.

A snapshot is a directory named by the UTC time its pull started. Each
pull hard-links every file unchanged since the previous snapshot
(`--link-dest`): pgBackRest never rewrites a backup or WAL file once
written, so a snapshot costs only what is new. The info files are fetched
first, and the rest after: a backup that finishes during the pull is then
listed by neither copy of backup.info, never listed with its files half
copied. A pull fills `.<name>.partial` and renames it when complete, so a
pull cut off leaves no snapshot that looks whole. Retention is the backup
server's own (tiers/retention.py's buckets over the snapshots' times).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..common.atomicfile import replace_file
from ..errors import PgharborError
from .retention import Candidate, Decision, Policy, decide
from .ssh import SshTarget

NAME_FORMAT = "%Y%m%dT%H%M%SZ"
LAST_PULL = ".last-pull.json"
INFO_FILES = ("backup.info*", "archive.info*")
# Identical modes on every pull: --link-dest links a file only when its
# attributes match the previous snapshot's copy.
COMMON = ["--recursive", "--links", "--times", "--fsync", "--chmod=D0750,F0640"]


class PullError(PgharborError, RuntimeError):
    pass


@dataclass(frozen=True)
class Snapshot:
    name: str
    path: Path
    taken: datetime


def snapshots(root: Path) -> list[Snapshot]:
    """The complete snapshots under root, oldest first."""
    found = []
    if root.is_dir():
        for path in root.iterdir():
            try:
                taken = datetime.strptime(path.name, NAME_FORMAT).replace(tzinfo=timezone.utc)
            except ValueError:
                continue
            if path.is_dir():
                found.append(Snapshot(path.name, path, taken))
    return sorted(found, key=lambda s: s.taken)


def pull(source: SshTarget, root: Path, now: datetime | None = None) -> dict:
    """One snapshot of the source's repository under root; returns the
    record also written to root/.last-pull.json."""
    now = now or datetime.now(timezone.utc)
    root.mkdir(mode=0o750, parents=True, exist_ok=True)
    for leftover in root.glob(".*.partial"):
        shutil.rmtree(leftover)
    previous = snapshots(root)
    name = now.strftime(NAME_FORMAT)
    if previous and previous[-1].name >= name:
        raise PullError(f"a snapshot named {previous[-1].name} exists already: the clock went back, or two "
                        "pulls ran at once")
    partial = root / f".{name}.partial"
    partial.mkdir(mode=0o750)
    started = time.monotonic()
    remote = f"{source.user}@{source.host}:./"
    link = [f"--link-dest={previous[-1].path}"] if previous else []
    try:
        _rsync(source, [*link, "--include=*/", *(f"--include={p}" for p in INFO_FILES), "--exclude=*",
                        "--prune-empty-dirs", remote, f"{partial}/"], "reading the info files")
        stats = _rsync(source, [*link, *(f"--exclude={p}" for p in INFO_FILES), "--stats", remote, f"{partial}/"],
                       "copying the repository")
        partial.rename(root / name)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    record = {"snapshot": name, "source": source.where(), "started": now.isoformat(timespec="seconds"),
              "seconds": round(time.monotonic() - started, 3), "transferred_bytes": _transferred(stats),
              "result": "ok", "error": ""}
    write_record(root, record)
    return record


def write_record(root: Path, record: dict) -> None:
    replace_file(root / LAST_PULL, json.dumps(record, indent=1, sort_keys=True) + "\n", mode=0o640)


def last_pull(root: Path) -> dict | None:
    try:
        return json.loads((root / LAST_PULL).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def prune(root: Path, policy: Policy, now: datetime, dry_run: bool = False) -> list[Decision]:
    """Apply the backup server's retention to the snapshots; the newest is
    always kept."""
    decisions = decide([Candidate(s.name, s.taken) for s in snapshots(root)], policy, now)
    if not dry_run:
        for decision in decisions:
            if not decision.keep:
                shutil.rmtree(root / decision.id)
    return decisions


def _rsync(source: SshTarget, args: list[str], doing: str) -> str:
    argv = ["rsync", *COMMON, f"--timeout={source.io_timeout}", "-e", shlex.join(source.ssh_command()), *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        said = " ".join(line.strip() for line in result.stderr.strip().splitlines()[-3:]) or "no message"
        hint = ""
        if "Host key verification failed" in said or "IDENTIFICATION HAS CHANGED" in result.stderr:
            hint = (": the DB host's host key does not match the pinned one "
                    "(backup_server_clients[].timetravel.host_key)")
        elif "Permission denied" in said:
            hint = (": the DB host refused the pull key; run site.yml so that pg_timetravel authorizes it "
                    "(pg_timetravel_tier2.public_key)")
        raise PullError(f"pulling from {source.where()}, {doing}, failed (rsync exit {result.returncode}: {said})"
                        f"{hint}; no snapshot was made and the previous ones are untouched")
    return result.stdout


def _transferred(stats: str) -> int | None:
    for line in stats.splitlines():
        if line.startswith("Total transferred file size:"):
            return int(line.split(":", 1)[1].split()[0].replace(",", ""))
    return None
