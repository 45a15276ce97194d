"""The scenario's DB host as the tests reach it: SQL as postgres, and WAL
archived up to now (what a status check of time travel needs first: an idle
server archives nothing new)."""

from __future__ import annotations

import shlex
import time

import testinfra

DB = testinfra.get_host("podman://bs-db")


def psql(sql: str, db: str = "appdb") -> str:
    result = DB.run(f"runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d {db} -c {shlex.quote(sql)}")
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def archived() -> None:
    """Every change so far is in the archive: a WAL switch, waited for."""
    segment = psql("SELECT pg_walfile_name(pg_switch_wal())", "postgres")
    deadline = time.monotonic() + 120
    while psql(f"SELECT last_archived_wal >= '{segment}' FROM pg_stat_archiver", "postgres") != "t":
        assert time.monotonic() < deadline, psql("SELECT * FROM pg_stat_archiver", "postgres")
        time.sleep(1)
