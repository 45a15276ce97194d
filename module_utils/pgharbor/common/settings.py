"""The JSON settings files the roles write (the backup agent's, the backup
server's): where they are, reading them (a missing or broken file is named
with the fix), and settings given as a mapping for a dataclass (a misspelt
key is named instead of silently ignored)."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import PgharborError

# Written by the pg_backup role (its __pg_backup_config) on a DB host and by
# the backup_server role (__backup_server_config) on the backup server.
BACKUP_CONFIG = "/etc/pgharbor/backup.json"
BACKUP_SERVER_CONFIG = "/etc/pgharbor/backup-server.json"
# Written by the pg_timetravel role (its __pg_timetravel_settings).
TIMETRAVEL_CONFIG = "/etc/pgharbor/timetravel.json"
# Written by the monitoring_server role (its __monitoring_server_report_settings).
REPORT_CONFIG = "/etc/pgharbor/report.json"


class ConfigError(PgharborError, ValueError):
    pass


def load_config(path: str | Path) -> dict:
    """Settings as a role writes them (JSON; each key is the role variable
    without the role's prefix)."""
    try:
        config = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"no configuration at {path}: run the role that writes it (pg_backup, backup_server, "
                          "pg_timetravel), or pass --config") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    return config


def unknown_keys(cls: type, values: dict, setting: str) -> str | None:
    """A message naming the keys cls does not have, or None."""
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = sorted(set(values) - known)
    if not unknown:
        return None
    return f"{setting}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"


def read_credentials(path: str | None, setting: str) -> dict:
    """An S3 key kept out of the main settings (which Ansible may show in a diff), from the file the
    role wrote for `setting`: {"access_key_id": ..., "secret_access_key": ...}."""
    if not path:
        return {}
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read tier 3's credentials from {path} ({setting}): {exc}") from exc
    return {k: values[k] for k in ("access_key_id", "secret_access_key") if values.get(k)}
