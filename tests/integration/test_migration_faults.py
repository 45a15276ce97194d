"""Migration faults on real servers: the process killed half-way, the target
gone mid-copy. Nothing is lost: the source comes back writable exactly as it
was, and the target says it is partial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from migrationdb import DBNAME, OWNER

from pgharbor.migration.freeze import freeze, thaw
from pgharbor.migration.migrate import PARTIAL_MARK, MigrationError, migrate

MODULE_UTILS = Path(__file__).resolve().parents[2] / "module_utils"


def add_big_table(server) -> None:
    """Enough rows that the copy takes a few seconds on loopback."""
    with server.connect(DBNAME, autocommit=True) as conn:
        conn.execute("CREATE TABLE app.big (id bigint PRIMARY KEY, filler text)")
        conn.execute("INSERT INTO app.big SELECT n, repeat(md5(n::text), 4) FROM generate_series(1, 600000) n")


def wait_for_phase(status: Path, phase: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status.exists():
            current = json.loads(status.read_text())
            if current["phase"] == phase:
                return current
        time.sleep(0.02)
    raise AssertionError(f"no phase {phase!r} within {timeout} s: {status.read_text() if status.exists() else '-'}")


def database_comment(server) -> str:
    with server.connect(DBNAME) as conn:
        return conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
                            (DBNAME,)).fetchone()[0]


def source_state(server) -> tuple:
    with server.connect(DBNAME) as conn:
        return (conn.execute("SELECT count(*), sum(hashtext(filler)) FROM app.big").fetchone(),
                conn.execute("SELECT last_value FROM app.invoice_no").fetchone()[0],
                conn.execute("SELECT setconfig FROM pg_db_role_setting WHERE setrole = 0 AND setdatabase = "
                             "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchall())


def test_a_migration_killed_half_way_rolls_back_to_the_exact_source(servers, tmp_path):
    add_big_table(servers.source)
    before = source_state(servers.source)
    status, state = tmp_path / "status.json", tmp_path / "freeze.json"
    script = (
        "import sys; from pgharbor.migration.freeze import freeze; from pgharbor.migration.migrate import migrate\n"
        "freeze(sys.argv[1], sys.argv[3], drain_seconds=0)\n"
        "migrate(sys.argv[1], sys.argv[2], target_role=sys.argv[4], jobs=1, status_path=sys.argv[5])\n")
    proc = subprocess.Popen([sys.executable, "-c", script, servers.source_conninfo(), servers.target_conninfo(),
                             str(state), OWNER, str(status)], env={**os.environ, "PYTHONPATH": str(MODULE_UTILS)})
    try:
        wait_for_phase(status, "rows")
        time.sleep(0.3)
        assert proc.poll() is None, "the migration ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()

    # Frozen while the process is gone: writes are refused, nothing changed.
    with servers.source.connect(DBNAME, autocommit=True) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO app.big VALUES (0, 'during')")
    assert database_comment(servers.target).startswith(PARTIAL_MARK)
    with servers.target.connect(DBNAME) as conn:
        copied = conn.execute("SELECT count(*) FROM app.big").fetchone()[0]
    assert copied < 600000

    assert thaw(servers.source_conninfo(), str(state)).changed
    assert source_state(servers.source) == before
    with servers.source.connect(DBNAME, autocommit=True) as conn:
        conn.execute("INSERT INTO app.big VALUES (0, 'writable again')")
        conn.execute("SELECT nextval('app.invoice_no')")


def test_the_target_gone_mid_copy_fails_naming_the_target(servers, tmp_path):
    add_big_table(servers.source)
    status = tmp_path / "status.json"
    state = str(tmp_path / "freeze.json")
    freeze(servers.source_conninfo(), state, drain_seconds=0)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(servers.source_conninfo(), servers.target_conninfo(), target_role=OWNER, jobs=1,
                    status_path=str(status))
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    wait_for_phase(status, "rows")
    time.sleep(0.3)
    servers.target.stop("immediate")
    worker.join(60)
    assert not worker.is_alive(), "the migration hung after the target went away"
    assert len(errors) == 1 and isinstance(errors[0], MigrationError), errors
    message = str(errors[0])
    assert message.startswith("failed in rows: copying app.big: the connection to the target was lost")
    assert "rollback.yml" in message
    assert json.loads(status.read_text())["phase"] == "failed in rows"
    thaw(servers.source_conninfo(), state)
    with servers.source.connect(DBNAME, autocommit=True) as conn:
        conn.execute("INSERT INTO app.big VALUES (0, 'source fine')")
