"""The options that pick a backup and decrypt it (plain data, so that the
modules declare them once), and where they lead."""

from __future__ import annotations

from typing import Any

from .config import ConfigError, load_config

DEFAULT_CONFIG = "/etc/pgharbor/backup.json"


def backup_source_options() -> dict[str, dict[str, Any]]:
    return {
        "config": {"type": "path", "default": DEFAULT_CONFIG},
        "directory": {"type": "path"},
        "backup": {"type": "str", "default": "latest"},
        "private_key": {"type": "str", "no_log": True},
        "passphrase": {"type": "str", "no_log": True},
    }


def backup_directory(params: dict[str, Any]) -> str:
    """The directory option, else the one in the pg_backup role's settings."""
    directory = params.get("directory") or load_config(params["config"]).get("directory")
    if not directory:
        raise ConfigError(f"no backup directory: set directory, or pg_backup_directory in {params['config']}")
    return directory
