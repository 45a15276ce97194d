"""The module options about tiers, declared once as plain data, and where
they lead: one tier to report on or prune (pg_backup_info,
pg_backup_retention), and the tiers to fetch a backup from, with the key
that decrypts it (pg_dump_verify, pg_backup_restore).

One name per meaning: ``tier`` is one tier, ``tiers`` a list of them,
nearest first; the credentials for a bucket are ``s3_access_key_id`` and
``s3_secret_access_key`` wherever a module takes them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backup.store import Store, StoreError
from ..common.memfile import private_file
from ..common.settings import BACKUP_CONFIG, BACKUP_SERVER_CONFIG, ConfigError, load_config
from .fetch import Sources
from .health import bucket_health, tier_health
from .prune import prune_bucket, prune_store
from .retention import Decision, Policy, PolicyError
from .s3settings import S3Error, S3Settings
from .ssh import ShipError, SshTarget

if TYPE_CHECKING:  # boto3 only where tier 3 is read
    from .s3 import S3Store

TIERS = ["tier1", "tier2", "tier3"]
DEFAULT_CONFIGS = {"tier1": BACKUP_CONFIG, "tier2": BACKUP_SERVER_CONFIG}
TIER_REQUIRED_IF = [("tier", "tier2", ["host"]), ("tier", "tier3", ["s3"])]


def s3_options() -> dict[str, dict[str, Any]]:
    """A bucket (as in pg_backup_tier3) and credentials for it."""
    return {
        "s3": {"type": "dict"},
        "s3_access_key_id": {"type": "str", "no_log": True},
        "s3_secret_access_key": {"type": "str", "no_log": True},
    }


def tier_options() -> dict[str, dict[str, Any]]:
    return {
        "tier": {"type": "str", "choices": TIERS, "default": "tier1"},
        "config": {"type": "path"},
        "host": {"type": "str"},
        **s3_options(),
    }


def backup_source_options() -> dict[str, dict[str, Any]]:
    return {
        "config": {"type": "path", "default": BACKUP_CONFIG},
        "directory": {"type": "path"},
        "backup": {"type": "str", "default": "latest"},
        "private_key": {"type": "str", "no_log": True},
        "passphrase": {"type": "str", "no_log": True},
        "tiers": {"type": "list", "elements": "str", "choices": TIERS, "default": ["tier1"]},
        "tier2_restore_key": {"type": "str", "no_log": True},
        "tier2_restore_user": {"type": "str", "default": "pgharbor-restore"},
        **s3_options(),
    }


def tier_config(params: dict[str, Any]) -> dict:
    """The settings of the role that runs tier 1 or 2 on this host."""
    return load_config(params["config"] or DEFAULT_CONFIGS[params["tier"]])


def setting(config: dict, key: str, variable: str) -> Any:
    """A setting the role always writes; its absence names the variable."""
    if not config.get(key):
        raise ConfigError(f"missing setting {key} ({variable}): run the role that writes it")
    return config[key]


def client(config: dict, host: str) -> tuple[dict, Path]:
    """A DB host's settings on the backup server, and its store."""
    settings = config.get("hosts", {}).get(host)
    if settings is None:
        raise ConfigError(f"{host} is not among this backup server's clients (backup_server_clients)")
    return settings, Path(setting(config, "root", "backup_server_root")) / "store" / host


def s3_settings(params: dict[str, Any], bucket: dict) -> S3Settings:
    try:
        return S3Settings.from_dict({**bucket, "access_key_id": params["s3_access_key_id"],
                                     "secret_access_key": params["s3_secret_access_key"]}, "s3")
    except S3Error as exc:
        raise ConfigError(str(exc)) from exc


def bucket(params: dict[str, Any]) -> S3Store:
    from .s3 import S3Store
    return S3Store(s3_settings(params, params["s3"]))


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
    config = load_config(params["config"]) if params["config"] and params["tiers"] != ["tier1"] else {}
    tier3 = None
    bucket = params["s3"] or config.get("tier3")
    if "tier3" in params["tiers"] and bucket:
        tier3 = s3_settings(params, bucket)
    if "tier2" in params["tiers"] and config.get("tier2") and params["tier2_restore_key"]:
        try:
            target = SshTarget.from_dict(config["tier2"], "pg_backup_tier2")
        except ShipError as exc:
            raise ConfigError(str(exc)) from exc
        with private_file(params["tier2_restore_key"]) as identity:
            yield Sources(directory=directory, order=list(params["tiers"]), tier3=tier3,
                          tier2=replace(target, identity=identity, user=params["tier2_restore_user"]))
        return
    yield Sources(directory=directory, order=list(params["tiers"]), tier3=tier3)


def tier_report(params: dict[str, Any], now: datetime) -> dict:
    """pg_backup_info: the health of the tier the options name."""
    if params["tier"] == "tier3":
        return bucket_health(bucket(params), params["max_age_hours"] or 2, now, "max_age_hours")
    config = tier_config(params)
    try:
        if params["tier"] == "tier1":
            return tier_health(setting(config, "directory", "pg_backup_directory"),
                               params["max_age_hours"] or float(config.get("max_age_hours", 2)), now)
        settings, store = client(config, params["host"])
        report = tier_health(str(store), params["max_age_hours"] or float(settings.get("max_age_hours", 2)), now,
                             max_age_setting=f"backup_server_clients[{params['host']}].max_age_hours")
    except OSError as exc:
        raise StoreError(f"cannot read the backups: {exc}") from exc
    # so that a sparser retention here is not taken for missing backups
    report["retention"] = settings.get("retention")
    return report


def prune_tier(params: dict[str, Any], dry_run: bool) -> list[Decision]:
    """pg_backup_retention: the policy applied to the tier the options name."""
    now = datetime.now(timezone.utc)
    if params["tier"] == "tier3":
        if not params["policy"]:
            raise PolicyError("policy: tier 3 has no policy of its own on the hosts; give one")
        return prune_bucket(bucket(params), Policy.from_dict(params["policy"], "policy"), now, dry_run=dry_run)
    config = tier_config(params)
    try:
        if params["tier"] == "tier1":
            policy = Policy.from_dict(params["policy"] or config.get("retention") or {}, "policy (pg_backup_retention)")
            return prune_store(Store(setting(config, "directory", "pg_backup_directory")), policy, now, dry_run=dry_run)
        settings, store = client(config, params["host"])
        policy = Policy.from_dict(params["policy"] or settings.get("retention") or {},
                                  f"backup_server_clients[{params['host']}].retention")
        return prune_store(Store(store), policy, now, dry_run=dry_run, all_verified=True)
    except OSError as exc:
        raise StoreError(f"cannot read or remove the backups: {exc}") from exc
