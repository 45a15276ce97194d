"""The connection options the modules share (plain data, so the modules
declare them once), and how they become a libpq conninfo or, for the
PostgreSQL command-line tools, a conninfo and an environment."""

from __future__ import annotations

import os
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

def connection_options(*ends: str) -> dict[str, dict[str, Any]]:
    """Argument spec entries: <end> (conninfo) and <end>_password (no_log)."""
    spec: dict[str, dict[str, Any]] = {}
    for end in ends:
        spec[end] = {"type": "str", "required": True}
        spec[f"{end}_password"] = {"type": "str", "no_log": True}
    return spec


def with_password(dsn: str, password: str | None) -> str:
    """dsn with the password added (passwords come as options of their own,
    so that Ansible masks them in logs)."""
    return make_conninfo(dsn, password=password) if password else dsn


def conninfo(params: dict[str, Any], end: str) -> str:
    """The end's conninfo with its <end>_password added."""
    return with_password(params[end], params.get(f"{end}_password"))


def libpq_env(conninfo: str) -> tuple[str, dict[str, str]]:
    """conninfo without the password, and an environment carrying it, so that
    the password of a pg_dump or pg_restore does not show in the process list."""
    params = conninfo_to_dict(conninfo)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**params), env
