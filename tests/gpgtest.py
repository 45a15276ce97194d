"""Real OpenPGP keys for the backup tests, made by gpg in throw-away homes."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TestKey:
    fingerprint: str
    public: str
    secret: str
    passphrase: str


def _gpg(home: Path, *args: str, data: bytes | None = None) -> str:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--quiet", *args], input=data,
                          capture_output=True, check=True).stdout.decode()


def make_key(uid: str, *, passphrase: str = "", expire: str = "1y", faked_time: str | None = None) -> TestKey:
    """An ed25519 primary key with a cv25519 encryption subkey. faked_time
    (gpg's --faked-system-time) makes keys that have expired by now."""
    home = Path(tempfile.mkdtemp(prefix="pgharbor-testkey-"))
    try:
        home.chmod(0o700)
        fake = ["--faked-system-time", faked_time] if faked_time else []
        _gpg(home, *fake, "--pinentry-mode", "loopback", "--passphrase", passphrase,
             "--quick-gen-key", uid, "future-default", "default", expire)
        listing = _gpg(home, "--with-colons", "--list-keys")
        fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        public = _gpg(home, "--armor", "--export", fingerprint)
        secret = _gpg(home, "--pinentry-mode", "loopback", "--passphrase", passphrase, "--armor",
                      "--export-secret-keys", fingerprint)
        return TestKey(fingerprint, public, secret, passphrase)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
        shutil.rmtree(home, ignore_errors=True)
