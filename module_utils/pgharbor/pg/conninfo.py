"""The connection options the modules share (plain data, so the modules
declare them once), and how they become a libpq conninfo or, for the
PostgreSQL command-line tools, a conninfo and an environment."""

from __future__ import annotations

import os
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

# The one name of each connection a module may open: a module option <end>
# is always a libpq conninfo and <end>_password its password.
#   source  the database a migration reads (and freezes)
#   target  the database it writes, and that the application then uses
#   db      the one database a module works on (the backup's)
#   server  a maintenance login on the server that may create databases
#           (a restore, a restore drill)
ENDS = ("source", "target", "db", "server")


def connection_options(*ends: str, required: bool = True, default: str | None = None) -> dict[str, dict[str, Any]]:
    """Argument spec entries: <end> (conninfo) and <end>_password (no_log),
    the same in every module (one name per meaning)."""
    spec: dict[str, dict[str, Any]] = {}
    for end in ends:
        assert end in ENDS, f"{end}: not one of the connections pgharbor names ({', '.join(ENDS)})"
        spec[end] = {"type": "str", "required": True} if required else {"type": "str"}
        if default is not None:
            spec[end] = {"type": "str", "default": default}
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
