"""The options that name a tier of backups (plain data, so that the modules
declare them once: pg_backup_info, pg_backup_retention), and where they lead."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ConfigError, load_config
from .s3settings import S3Settings

if TYPE_CHECKING:  # boto3 only where tier 3 is read
    from .s3store import S3Store

DEFAULT_CONFIGS = {"tier1": "/etc/pgharbor/backup.json", "tier2": "/etc/pgharbor/backup-server.json"}
TIER_REQUIRED_IF = [("tier", "tier2", ["host"]), ("tier", "tier3", ["s3"])]


def tier_options() -> dict[str, dict[str, Any]]:
    return {
        "tier": {"type": "str", "choices": ["tier1", "tier2", "tier3"], "default": "tier1"},
        "config": {"type": "path"},
        "host": {"type": "str"},
        "s3": {"type": "dict"},
        "access_key_id": {"type": "str", "no_log": True},
        "secret_access_key": {"type": "str", "no_log": True},
    }


def tier_config(params: dict[str, Any]) -> dict:
    """The settings of the role that runs tier 1 or 2 on this host."""
    return load_config(params["config"] or DEFAULT_CONFIGS[params["tier"]])


def client(config: dict, host: str) -> tuple[dict, Path]:
    """A DB host's settings on the backup server, and its store."""
    settings = config.get("hosts", {}).get(host)
    if settings is None:
        raise ConfigError(f"{host} is not among this backup server's clients (backup_server_clients)")
    return settings, Path(config["root"]) / "store" / host


def bucket(params: dict[str, Any]) -> S3Store:
    from .s3store import S3Store
    return S3Store(S3Settings.from_dict({**params["s3"], "access_key_id": params["access_key_id"],
                                         "secret_access_key": params["secret_access_key"]}, "s3"))
