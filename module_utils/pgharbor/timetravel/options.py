"""The time-travel modules' shared options: which stanza, through the
settings file the pg_timetravel role writes (the same file the
pgharbor-timetravel command reads), so a module never needs its own copy of
the stanza's name or pgBackRest's configuration path."""

from __future__ import annotations

from typing import Any

from ..common.settings import TIMETRAVEL_CONFIG, ConfigError, load_config
from .engine import Pgbackrest


def timetravel_options() -> dict[str, dict[str, Any]]:
    return {"config": {"type": "path", "default": TIMETRAVEL_CONFIG}}


def engine_from(params: dict[str, Any]) -> Pgbackrest:
    config = load_config(params["config"])
    missing = [key for key in ("stanza", "pgbackrest_config") if not config.get(key)]
    if missing:
        raise ConfigError(f"{params['config']}: missing setting {', '.join(missing)}: run the pg_timetravel role, "
                          "which writes it")
    return Pgbackrest(config["pgbackrest_config"], config["stanza"])
