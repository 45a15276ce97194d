"""pg_amcheck on a database: heap pages and every B-tree index, with all heap
tuples looked up in the indexes. Used by both restore drills: the logical
backup's scratch database and the time-travel drill's past copy."""

from __future__ import annotations

import subprocess

from ..errors import PgharborError
from .conninfo import libpq_env
from .sections import pg_bindir


class AmcheckError(PgharborError, RuntimeError):
    pass


def amcheck(conninfo: str, what: str = "the restored copy", *, all_databases: bool = False) -> None:
    """Raise AmcheckError with pg_amcheck's words when it finds anything. The amcheck extension is
    installed where missing, so the database must be writable: a scratch copy, never the live one."""
    dsn, env = libpq_env(conninfo)
    argv = [str(pg_bindir() / "pg_amcheck"), "--install-missing", "--heapallindexed", "--no-strict-names"]
    argv += ["--all", "--maintenance-db", dsn] if all_databases else [dsn]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AmcheckError(f"pg_amcheck found problems in {what}: {(result.stdout + result.stderr).strip()}")
