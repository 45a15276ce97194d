"""The exporters role's mtail program (roles/exporters/files/
pgharbor_postgresql.mtail), run by Debian's mtail over the log a real
PostgreSQL 15 wrote with postgresql_server's log settings: every kind of
refused login is counted once, and a login that succeeds is not."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg
import pytest
from pgserver import PG_BINDIR, _as_server_user, start_server

REPO = Path(__file__).resolve().parents[2]
MTAIL = REPO / ".cache/mtail/usr/bin/mtail"
PROGRAM = REPO / "roles/exporters/files/pgharbor_postgresql.mtail"
CONF = REPO / "roles/postgresql_server/templates/postgresql.conf.j2"


def role_log_settings() -> dict[str, str]:
    """The log settings postgresql_server writes (its template, not a copy of it)."""
    text = CONF.read_text()
    return {name: re.search(rf"^{name} = '?(.*?)'?$", text, re.M).group(1)
            for name in ("log_line_prefix", "log_connections", "lc_messages")}


@pytest.fixture(scope="module")
def server():
    pg = start_server(role_log_settings())
    try:
        with pg.connect(autocommit=True) as conn:
            conn.execute("CREATE ROLE app LOGIN PASSWORD 'right'")
            conn.execute("CREATE DATABASE hidden")
        # The first lines win: one user is rejected outright, one database has no line at all.
        hba = pg.datadir / "pg_hba.conf"
        hba.write_text("local all all peer\n"
                       "host all intruder 127.0.0.1/32 reject\n"
                       "host postgres all 127.0.0.1/32 scram-sha-256\n")
        subprocess.run([*_as_server_user(), str(PG_BINDIR / "pg_ctl"), "reload", "-D", str(pg.datadir)],
                       check=True)
        yield pg
    finally:
        # also when the setting up fails: no server outlives the test
        pg.remove()


def counted(log: Path) -> dict[str, float]:
    out = subprocess.run([str(MTAIL), "--one_shot", "--one_shot_format", "prometheus", "--emit_prog_label=false",
                          "--progs", str(PROGRAM.parent), "--logs", str(log), "--logtostderr"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return {name: float(value) for name, value in re.findall(r"^(pgharbor_\w+)\S* (\S+)$", out, re.M)}


def login(pg, user: str, password: str, dbname: str = "postgres") -> bool:
    try:
        psycopg.connect(pg.conninfo(dbname=dbname, user=user, password=password)).close()
        return True
    except psycopg.OperationalError:
        return False


def test_each_refused_login_is_counted_once_and_a_good_one_is_not(server):
    if not MTAIL.exists():
        pytest.fail("mtail is not unpacked: run 'make .cache/mtail/usr/bin/mtail' (make integration does)")
    assert login(server, "app", "right")
    before = counted(server.logfile)
    assert before == {"pgharbor_postgresql_auth_failed_total": 0, "pgharbor_postgresql_rejected_total": 0}, \
        "a login that succeeded was counted"
    assert not login(server, "app", "wrong")
    assert not login(server, "app", "also wrong")
    assert not login(server, "intruder", "anything")
    assert not login(server, "app", "right", dbname="hidden")
    assert counted(server.logfile) == {"pgharbor_postgresql_auth_failed_total": 2,
                                       "pgharbor_postgresql_rejected_total": 2}
    fatal = [line for line in server.logfile.read_text().splitlines() if "FATAL:" in line]
    assert len(fatal) == 4, fatal
