"""OpenPGP keys for backups, through the gpg command.

The DB host keeps only public keys, in a keyring of pgharbor's own; backups
are encrypted to every configured recipient (an operations key and an
offline escrow key, say). The private key that decrypts exists on the DB
host only while a verification or a restore runs, in a temporary keyring in
memory (/dev/shm), removed afterwards.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..common.memfile import private_dir
from ..errors import PgharborError

# How gpg marks a key or subkey that must not be used.
UNUSABLE = {"e": "expired", "r": "revoked", "i": "invalid", "d": "disabled", "n": "not valid"}


class KeyProblem(PgharborError, RuntimeError):
    """A key problem, with what to do about it."""


@dataclass(frozen=True)
class Key:
    fingerprint: str
    uids: tuple[str, ...]
    # Epoch seconds, None for no expiry: the soonest expiry of the usable
    # encryption (sub)keys, which is what ends the key's use for backups.
    expires: int | None
    can_encrypt: bool
    # Why the key cannot encrypt (expired, revoked, no encryption subkey).
    problem: str = ""


def gpg(home: str | Path, *args: str, agent: bool = False) -> list[str]:
    """The gpg command on a keyring. Public-key work needs no gpg-agent, and
    one started for it would outlive the command; only the private key's
    throw-away keyring uses one (and stops it)."""
    base = ["gpg", "--homedir", str(home), "--batch", "--no-tty", "--quiet", "--no-auto-check-trustdb"]
    return base + ([] if agent else ["--no-autostart"]) + list(args)


def import_keys(home: str | Path, armored: str | bytes) -> list[str]:
    """Import keys; return the fingerprints of the primary keys imported."""
    Path(home).mkdir(mode=0o700, parents=True, exist_ok=True)
    data = armored.encode() if isinstance(armored, str) else armored
    out = subprocess.run(gpg(home, "--status-fd", "1", "--import"), input=data, capture_output=True, check=False)
    fingerprints = [line.split()[3] for line in out.stdout.decode().splitlines()
                    if line.startswith("[GNUPG:] IMPORT_OK")]
    if out.returncode != 0 or not fingerprints:
        raise KeyProblem(f"gpg --import found no usable key: {out.stderr.decode(errors='replace').strip()}")
    return sorted(set(fingerprints))


def parse_colons(listing: str, now: float) -> dict[str, Key]:
    """Keys from `gpg --with-colons --fixed-list-mode --list-keys`."""
    keys: dict[str, Key] = {}
    current: dict | None = None

    def close() -> None:
        if current is None:
            return
        usable = [e for e in current["enc"] if not e["problem"]]
        if usable:
            expiries = [e["expires"] for e in usable if e["expires"]]
            key = Key(current["fpr"], tuple(current["uids"]), min(expiries) if expiries else None, True)
        else:
            problems = sorted({e["problem"] for e in current["enc"]}) or ["has no encryption subkey"]
            key = Key(current["fpr"], tuple(current["uids"]), None, False, ", ".join(problems))
        keys[current["fpr"]] = key

    pending: dict | None = None
    for line in listing.splitlines():
        f = line.split(":")
        kind = f[0]
        if kind == "pub":
            close()
            current = {"fpr": "", "uids": [], "enc": [], "primary_problem": ""}
            pending = _subkey(f, now)
            current["primary_problem"] = pending["problem"]
        elif kind == "sub" and current is not None:
            pending = _subkey(f, now)
            # A subkey of an expired or revoked primary key is unusable too.
            pending["problem"] = current["primary_problem"] or pending["problem"]
        elif kind == "fpr" and current is not None and pending is not None:
            if not current["fpr"]:
                current["fpr"] = f[9]
            if "e" in pending["caps"]:
                current["enc"].append(pending)
            pending = None
        elif kind == "uid" and current is not None:
            current["uids"].append(f[9])
    close()
    return keys


def _subkey(f: list[str], now: float) -> dict:
    expires = int(f[6]) if f[6] else None
    problem = UNUSABLE.get(f[1], "")
    if not problem and expires is not None and expires <= now:
        problem = "expired"
    if problem == "expired" and expires:
        problem = f"expired on {time.strftime('%Y-%m-%d', time.gmtime(expires))}"
    return {"caps": f[11], "expires": expires, "problem": problem}


def public_keys(home: str | Path, now: float | None = None) -> dict[str, Key]:
    if not Path(home).is_dir():
        return {}
    result = subprocess.run(gpg(home, "--with-colons", "--fixed-list-mode", "--list-keys"), capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise KeyProblem(f"gpg --list-keys on {home} failed: {result.stderr.strip()}")
    return parse_colons(result.stdout, time.time() if now is None else now)


def check_recipients(home: str | Path, fingerprints: list[str], *, now: float | None = None) -> list[Key]:
    """The recipients' keys, each present and able to encrypt; otherwise an
    error naming every key that is not and the setting to fix."""
    if not fingerprints:
        raise KeyProblem("no encryption key: set recipients (pg_backup_recipients) to one or more key fingerprints")
    keys = public_keys(home, now)
    found, problems = [], []
    for fpr in fingerprints:
        wanted = fpr.replace(" ", "").upper()
        key = keys.get(wanted)
        if key is None:
            problems.append(f"{wanted} is not in the keyring {home}: add its public key to "
                            "pg_backup_public_keys (or remove it from pg_backup_recipients)")
        elif not key.can_encrypt:
            problems.append(f"{wanted} ({', '.join(key.uids) or 'no user id'}) {key.problem}: "
                            "replace it in pg_backup_public_keys and pg_backup_recipients")
        else:
            found.append(key)
    if problems:
        raise KeyProblem("encryption key problem: " + "; ".join(problems))
    return found


def encrypt_argv(home: str | Path, fingerprints: list[str]) -> list[str]:
    """gpg reading plaintext on stdin, writing the encrypted stream. The data
    is compressed already (zstd), so gpg's own compression is off; trust
    comes from the fingerprints pinned in the configuration, not a web of
    trust."""
    recipients = [arg for fpr in fingerprints for arg in ("--recipient", fpr)]
    return gpg(home, "--trust-model", "always", "--cipher-algo", "AES256", "--compress-algo", "none",
               "--encrypt", *recipients)


@dataclass(frozen=True)
class SecretKeyring:
    home: Path
    passphrase_file: Path | None

    def decrypt_argv(self, path: str | Path) -> list[str]:
        """gpg decrypting the file at path to stdout. gpg writes plaintext
        before it has checked the integrity code at the end, so its exit
        status is what says the stream was intact."""
        args = ["--pinentry-mode", "loopback"]
        if self.passphrase_file is not None:
            args += ["--passphrase-file", str(self.passphrase_file)]
        return gpg(self.home, *args, "--decrypt", str(path), agent=True)


@contextmanager
def secret_keyring(private_key: str, passphrase: str | None = None) -> Iterator[SecretKeyring]:
    """A throw-away keyring holding the private key, in memory where /dev/shm
    exists, removed (and its agent stopped) on exit."""
    with private_dir("pgharbor-gpg-") as home:
        try:
            passfile = None
            if passphrase:
                passfile = home / "passphrase"
                fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(passphrase)
            args = ["--pinentry-mode", "loopback"] + (["--passphrase-file", str(passfile)] if passfile else [])
            out = subprocess.run(gpg(home, *args, "--import", agent=True), input=private_key.encode(),
                                 capture_output=True, check=False)
            if out.returncode != 0:
                raise KeyProblem("the private key (pg_backup_private_key) could not be imported: "
                                 + out.stderr.decode(errors="replace").strip())
            yield SecretKeyring(home, passfile)
        finally:
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, check=False)
