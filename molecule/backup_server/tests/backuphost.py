"""The scenario's backup server as the tests reach it, and its timers held
still while a test looks at what they change."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import testinfra

BACKUP = testinfra.get_host("podman://bs-backup")


@contextlib.contextmanager
def held_still(unit: str) -> Iterator[None]:
    """unit's timer stopped, and a run of it that is under way ended, so that
    what it writes does not change while a test looks at it; started again
    afterwards."""
    BACKUP.run_test(f"systemctl stop {unit}.timer")
    try:
        deadline = time.monotonic() + 120
        while BACKUP.run(f"systemctl is-active {unit}.service").stdout.strip() not in ("inactive", "failed"):
            assert time.monotonic() < deadline, f"{unit}.service still runs after 120 s"
            time.sleep(2)
        yield
    finally:
        BACKUP.run_test(f"systemctl start {unit}.timer")
