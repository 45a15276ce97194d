"""Tier 2, seen from the DB host: rsync over SSH into the backup server's
incoming directory for this host.

The backup server restricts the DB host's key to `rrsync -wo -no-del
<incoming dir>`: the DB host can add files there and nothing else; it cannot
read, list or delete anything. The artefact goes first and the manifest
last, each in its own transfer; rsync writes each file under a temporary
dot-name and renames it only once complete. The backup server's intake
(intake.py) checks the artefact against the manifest and moves both into
the host's store, out of the DB host's reach, within a minute.

The server's host key is pinned: a known_hosts file that Ansible wrote, and
StrictHostKeyChecking=yes (never trust on first use).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from dataclasses import dataclass

from ..backup.store import Backup
from ..common.settings import unknown_keys
from ..errors import PgharborError


class ShipError(PgharborError, RuntimeError):
    pass


@dataclass(frozen=True)
class SshTarget:
    host: str
    user: str
    identity: str
    known_hosts: str
    port: int = 22
    connect_timeout: int = 10
    # seconds without progress before rsync gives up (a cut connection)
    io_timeout: int = 120
    bwlimit_kbps: int | None = None
    retries: int = 2

    @classmethod
    def from_dict(cls, values: dict, setting: str) -> SshTarget:
        problem = unknown_keys(cls, values, setting)
        if problem:
            raise ShipError(problem)
        missing = [name for name in ("host", "user", "identity", "known_hosts") if not values.get(name)]
        if missing:
            raise ShipError(f"{setting}: set {', '.join(missing)} (the backup server, its login, this host's "
                            "private key, the pinned host key file)")
        return cls(**values)

    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    def ssh_command(self) -> list[str]:
        return ["ssh", "-i", self.identity, "-p", str(self.port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]


def _rsync(target: SshTarget) -> list[str]:
    argv = ["rsync", "--times", f"--timeout={target.io_timeout}", "-e", shlex.join(target.ssh_command())]
    if target.bwlimit_kbps:
        argv.append(f"--bwlimit={target.bwlimit_kbps}")
    return argv


def rsync_argv(target: SshTarget, path: str) -> list[str]:
    return [*_rsync(target), "--chmod=F0640", "--", path, f"{target.user}@{target.host}:"]


def run_rsync(target: SshTarget, args: list[str], doing: str) -> None:
    """One rsync over the target's pinned SSH (restores read from tier 2 this way)."""
    result = subprocess.run([*_rsync(target), *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ShipError(f"{doing} failed: {_explain(result.returncode, result.stderr).text}")


def ship(backup: Backup, target: SshTarget) -> dict:
    """Artefact, then manifest. A transfer that fails is retried (a new
    connection); the last failure becomes a ShipError with rsync's words."""
    started = time.monotonic()
    for path in (backup.artefact, backup.manifest_path):
        _transfer(str(path), target)
    return {"tier": "ssh", "backup": backup.id, "bytes": backup.manifest.size,
            "seconds": round(time.monotonic() - started, 3), "target": target.where()}


def _transfer(path: str, target: SshTarget) -> None:
    for attempt in range(target.retries + 1):
        result = subprocess.run(rsync_argv(target, path), capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return
        problem = _explain(result.returncode, result.stderr)
        if not problem.retry or attempt == target.retries:
            raise ShipError(f"shipping {path} to {target.where()} failed: {problem.text}; the tier-1 copy is kept "
                            "and the next run ships it again")
        time.sleep(min(30, 2 ** attempt))


@dataclass(frozen=True)
class _Problem:
    text: str
    retry: bool


def _explain(code: int, stderr: str) -> _Problem:
    said = " ".join(line.strip() for line in stderr.strip().splitlines()[-3:])
    if "Failed to exec ssh" in stderr:
        return _Problem("rsync cannot start ssh: install openssh-client (the pg_backup role does when "
                        "pg_backup_tier2 is set)", False)
    if "Host key verification failed" in said or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        return _Problem(f"the backup server's host key does not match the pinned one ({said}): check "
                        "pg_backup_tier2_host_keys, never disable the check", False)
    if "Permission denied" in said and "publickey" in said:
        return _Problem(f"the backup server refused this host's key ({said}): run site.yml so that "
                        "backup_server authorizes it", False)
    if "No space left on device" in stderr or "Disk quota exceeded" in stderr:
        return _Problem(f"the backup server's disk is full ({said}): free space there or grow it", False)
    if code == 11:
        # a file I/O error on the receiving side; its message does not always arrive before the connection closes
        detail = f": {said}" if said else ""
        return _Problem(f"the backup server could not write the file (rsync exit 11, file I/O error{detail}): "
                        "is its disk full? free space there, or check its incoming directory", False)
    return _Problem(f"rsync exit {code}: {said or 'no message'}", code in (10, 12, 30, 35, 255))
