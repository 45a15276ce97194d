"""Replacing a small file so that a reader sees the old content or the new,
never half of either: state files, status files, manifests."""

from __future__ import annotations

import os
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def fsync_dir(path: Path) -> None:
    """Make a rename in the directory survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, text: str, *, mode: int = 0o600, durable: bool = True) -> None:
    """Write text under a temporary name beside path, then rename it over
    path. durable also syncs the file and the rename to disk (for records a
    later run relies on; a progress file that is rewritten every second
    does not need it)."""
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)
