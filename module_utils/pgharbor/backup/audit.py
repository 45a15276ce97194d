"""An append-only audit log of operator actions on backups (JSON lines):
who asked, when, what, for which database, and where the result went."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .manifest import now_text


def audit(path: str | Path, action: str, who: str, **details: object) -> dict:
    entry = {"time": now_text(), "action": action, "who": who, **details}
    log = Path(path)
    log.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(fd, "a") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry
