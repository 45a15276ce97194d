"""The backup agent's cycle, what the timer (pgharbor-backup run) and the
pg_backup module run: take a backup, ship to every configured tier what it
misses (oldest first), apply tier 1's retention, all under the directory's
lock, and record the outcome for status. Taking a backup is the backup
room's (backup.take); shipping and retention are the tiers'; tying them
together is the agent's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from ..backup.manifest import Manifest, now_text
from ..backup.store import Backup, Store
from ..backup.take import BackupError, BackupSettings, Progress, guarded, take
from ..common.settings import ConfigError, read_credentials
from ..ha.member import Acting, acting
from ..tiers.prune import prune_store
from ..tiers.retention import Policy, PolicyError
from ..tiers.s3settings import S3Error, S3Settings
from ..tiers.shipping import ship_pending
from ..tiers.ssh import ShipError, SshTarget
from ..tiers.ssh import ship as ship_ssh


@dataclass
class AgentSettings(BackupSettings):
    """A backup's settings, and what the cycle does after it."""
    # Tier 1's retention, applied after each run (None: keep everything).
    retention: Policy | None = None
    # Where each run ships its backup (and any earlier one a tier still misses).
    tier2: SshTarget | None = None
    tier3: S3Settings | None = None
    # In a cluster, the member that takes the backups: primary or standby.
    cluster_member: str = "primary"


def acting_here(conninfo: str, cluster_member: str) -> Acting:
    """Whether this server takes the backups: in a cluster, only the member chosen does."""
    return acting(conninfo, cluster_member or "primary", "the logical backups", "pg_backup_cluster_member")


@dataclass
class BackupRun:
    manifest: Manifest
    # per tier: {"shipped": [ids], "error": ""}
    shipping: dict[str, dict]
    # retention's decisions on tier 1 (removed ones have keep false)
    retention: list[dict]

    @property
    def shipping_errors(self) -> dict[str, str]:
        return {tier: r["error"] for tier, r in self.shipping.items() if r["error"]}


class ShippingFailed(BackupError):
    """The backup was taken; a tier did not receive it."""

    def __init__(self, message: str, run: BackupRun):
        super().__init__(message)
        self.run = run


# each key is the pg_backup role variable without its prefix
REQUIRED = ("db", "directory", "keyring", "recipients")


def settings_from(config: dict) -> AgentSettings:
    missing = [key for key in REQUIRED if not config.get(key)]
    if missing:
        raise ConfigError("missing setting: " + ", ".join(f"{key} (pg_backup_{key})" for key in missing))
    try:
        retention = Policy.from_dict(config["retention"], "pg_backup_retention") if config.get("retention") else None
        tier2 = SshTarget.from_dict(config["tier2"], "pg_backup_tier2") if config.get("tier2") else None
        keys = read_credentials(config.get("tier3_credentials_file"), "pg_backup_tier3_credentials")
        tier3 = S3Settings.from_dict({**config["tier3"], **keys}, "pg_backup_tier3") if config.get("tier3") else None
    except (PolicyError, ShipError, S3Error, TypeError) as exc:
        raise ConfigError(str(exc)) from exc
    return AgentSettings(
        conninfo=config["db"], directory=config["directory"], keyring=config["keyring"],
        recipients=list(config["recipients"]), compression_level=int(config.get("compression_level", 3)),
        compression_threads=int(config.get("compression_threads", 1)),
        table_hashes=bool(config.get("table_hashes", False)),
        reserve_bytes=int(config.get("reserve_mb", 0)) << 20, server_name=config.get("server_name") or "",
        retention=retention, tier2=tier2, tier3=tier3, cluster_member=config.get("cluster_member") or "primary")


def run_backup(settings: AgentSettings, progress: Progress | None = None) -> BackupRun:
    """What the timer runs: a backup, then shipping to every configured
    tier (whatever a tier still misses, oldest first), then tier 1's
    retention, all under the directory's lock; the outcome is recorded for
    status. A tier that fails does not stop the others; the run then raises
    ShippingFailed, which carries the backup that was taken."""
    store = Store(settings.directory)
    started = now_text()

    def cycle(store: Store) -> BackupRun:
        with store.lock():
            manifest = take(settings, store, progress)
            shipping = ship_pending(store, shippers_for(settings))
            retention = []
            if settings.retention is not None:
                retention = [d.as_dict() for d in prune_store(
                    store, settings.retention, datetime.now(timezone.utc), dry_run=False,
                    holds=lambda b: [f"not shipped to {tier} yet" for tier, r in shipping.items()
                                     if b.id not in store.shipped().get(tier, {})])]
            return BackupRun(manifest, shipping, retention)

    try:
        run = guarded(settings, cycle)
    except BackupError as exc:
        _record(store, {"result": "failed", "started": started, "error": str(exc)})
        raise
    manifest = run.manifest
    _record(store, {"result": "ok", "started": started, "finished": manifest.finished, "backup": manifest.id,
                    "size": manifest.size, "error": "", "shipping": run.shipping,
                    "removed": [d["id"] for d in run.retention if not d["keep"]]})
    if run.shipping_errors:
        raise ShippingFailed(f"backup {manifest.id} taken, but " + "; ".join(
            f"{tier}: {error}" for tier, error in run.shipping_errors.items()), run)
    return run


def shippers_for(settings: AgentSettings) -> dict[str, Callable[[Backup], dict]]:
    shippers: dict[str, Callable[[Backup], dict]] = {}
    if settings.tier2 is not None:
        target = settings.tier2
        shippers["tier2"] = lambda backup: ship_ssh(backup, target)
    if settings.tier3 is not None:
        try:
            from ..tiers.s3 import S3Store  # boto3 only where tier 3 is used
        except ImportError as exc:
            raise BackupError(f"tier 3 (pg_backup_tier3) needs boto3: {exc} (the pg_backup role installs "
                              "python3-boto3)") from exc
        shippers["tier3"] = S3Store(settings.tier3).ship
    return shippers


def _record(store: Store, status: dict) -> None:
    try:
        store.write_status(status)
    except OSError:
        pass  # a full disk must not replace the backup's own error; status then shows the older record
