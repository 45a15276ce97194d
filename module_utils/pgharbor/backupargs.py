"""The options that pick a backup and decrypt it (plain data, so that the
modules declare them once), and where they lead."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from .config import ConfigError, load_config
from .fetch import Sources
from .memfile import private_file
from .s3settings import S3Error, S3Settings
from .sshship import ShipError, SshTarget

DEFAULT_CONFIG = "/etc/pgharbor/backup.json"


def backup_source_options() -> dict[str, dict[str, Any]]:
    return {
        "config": {"type": "path", "default": DEFAULT_CONFIG},
        "directory": {"type": "path"},
        "backup": {"type": "str", "default": "latest"},
        "private_key": {"type": "str", "no_log": True},
        "passphrase": {"type": "str", "no_log": True},
        "source": {"type": "list", "elements": "str", "choices": ["tier1", "tier2", "tier3"], "default": ["tier1"]},
        "tier2_restore_key": {"type": "str", "no_log": True},
        "tier2_restore_user": {"type": "str", "default": "pgharbor-restore"},
        "s3": {"type": "dict"},
        "s3_access_key_id": {"type": "str", "no_log": True},
        "s3_secret_access_key": {"type": "str", "no_log": True},
    }


def backup_directory(params: dict[str, Any]) -> str:
    """The directory option, else the one in the pg_backup role's settings."""
    directory = params.get("directory") or load_config(params["config"]).get("directory")
    if not directory:
        raise ConfigError(f"no backup directory: set directory, or pg_backup_directory in {params['config']}")
    return directory


@contextmanager
def backup_sources(params: dict[str, Any]) -> Iterator[Sources]:
    """Where to look for the backup, in order: tier 1 (the directory), tier 2
    (the backup server of the pg_backup role's settings, read with
    tier2_restore_key, which exists on the host only meanwhile), tier 3
    (the bucket of the settings, or s3, read with the credentials given
    here: the host's own may only put objects)."""
    directory = backup_directory(params)
    config = load_config(params["config"]) if params["config"] and params["source"] != ["tier1"] else {}
    tier3 = None
    bucket = params["s3"] or config.get("tier3")
    if "tier3" in params["source"] and bucket:
        try:
            tier3 = S3Settings.from_dict({**bucket, "access_key_id": params["s3_access_key_id"],
                                          "secret_access_key": params["s3_secret_access_key"]}, "s3")
        except S3Error as exc:
            raise ConfigError(str(exc)) from exc
    if "tier2" in params["source"] and config.get("tier2") and params["tier2_restore_key"]:
        try:
            target = SshTarget.from_dict(config["tier2"], "pg_backup_tier2")
        except ShipError as exc:
            raise ConfigError(str(exc)) from exc
        with private_file(params["tier2_restore_key"]) as identity:
            yield Sources(directory=directory, order=list(params["source"]), tier3=tier3,
                          tier2=replace(target, identity=identity, user=params["tier2_restore_user"]))
        return
    yield Sources(directory=directory, order=list(params["source"]), tier3=tier3)
