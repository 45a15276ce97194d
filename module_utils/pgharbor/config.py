"""Reading the JSON settings files the roles write (the backup agent's,
the backup server's): a missing or broken file is named with the fix."""

from __future__ import annotations

import json
from pathlib import Path


class ConfigError(ValueError):
    pass


def load_config(path: str | Path) -> dict:
    """Settings as a role writes them (JSON; each key is the role variable
    without the role's prefix)."""
    try:
        config = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"no configuration at {path}: run the role that writes it (pg_backup, backup_server), "
                          "or pass --config") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    return config
