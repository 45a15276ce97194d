"""The connection options the migration modules share (plain data, so the
modules declare them once), and how they become a libpq conninfo."""

from __future__ import annotations

from typing import Any

from psycopg.conninfo import make_conninfo

def connection_options(*ends: str) -> dict[str, dict[str, Any]]:
    """Argument spec entries: <end> (conninfo) and <end>_password (no_log)."""
    spec: dict[str, dict[str, Any]] = {}
    for end in ends:
        spec[end] = {"type": "str", "required": True}
        spec[f"{end}_password"] = {"type": "str", "no_log": True}
    return spec


def conninfo(params: dict[str, Any], end: str) -> str:
    """The end's conninfo with its password added (kept out of the conninfo
    option so that it is masked in logs)."""
    password = params.get(f"{end}_password")
    return make_conninfo(params[end], password=password) if password else params[end]
