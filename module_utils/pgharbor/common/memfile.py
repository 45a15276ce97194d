"""Secrets that must exist as files for a moment (a private key for gpg or
ssh): in memory where /dev/shm exists, readable by this user only, removed
when done."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def memory_dir() -> str | None:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else None


@contextmanager
def private_dir(prefix: str) -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=memory_dir()))
    try:
        os.chmod(home, 0o700)
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def private_file(content: str) -> Iterator[str]:
    """content in a 0600 file; its path while the block runs."""
    with private_dir("pgharbor-key-") as home:
        path = home / "key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content.strip() + "\n")
        yield str(path)
