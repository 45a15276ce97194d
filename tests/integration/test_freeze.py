"""Source freeze for the cutover on a real server: read-only for every role,
open sessions drained, and lifted back to exactly what was there."""

from __future__ import annotations

import psycopg
import pytest

from pgharbor.migration.freeze import FreezeError, freeze, is_frozen, read_state, thaw

DB = "frozendb"


@pytest.fixture
def db(pg_server):
    with pg_server.connect(autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
        conn.execute("DROP ROLE IF EXISTS writer")
        conn.execute("CREATE ROLE writer LOGIN PASSWORD 'writer-pw'")
    with pg_server.connect(DB, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id serial PRIMARY KEY, v text)")
        conn.execute("GRANT ALL ON t, t_id_seq TO writer")
    yield pg_server
    with pg_server.connect(autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute("DROP ROLE writer")


def writer(server) -> psycopg.Connection:
    return psycopg.connect(server.conninfo(DB, user="writer", password="writer-pw"), autocommit=True)


def database_setting(server) -> list[str]:
    with server.connect(DB) as conn:
        return conn.execute(
            """SELECT coalesce(array_agg(cfg ORDER BY cfg), '{}') FROM pg_db_role_setting s, unnest(s.setconfig) cfg
               WHERE s.setrole = 0 AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = %s)""",
            (DB,)).fetchone()[0]


def test_frozen_means_read_only_for_everyone_and_open_sessions_are_drained(db, tmp_path):
    state = str(tmp_path / "freeze.json")
    open_session = writer(db)
    result = freeze(db.conninfo(DB), state, drain_seconds=0.5)
    assert result.changed and result.terminated == 1 and result.previous is None
    with pytest.raises(psycopg.OperationalError, match="terminating connection"):
        open_session.execute("SELECT 1")
    with writer(db) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("INSERT INTO t (v) VALUES ('after the freeze')")
    with writer(db) as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("SELECT nextval('t_id_seq')")
    with writer(db) as conn:  # reading still works
        assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    assert is_frozen(db.conninfo(DB)) and read_state(state).database == DB

    again = freeze(db.conninfo(DB), state)
    assert not again.changed and read_state(state).previous is None

    lifted = thaw(db.conninfo(DB), state)
    assert lifted.changed and database_setting(db) == []
    with writer(db) as conn:
        conn.execute("INSERT INTO t (v) VALUES ('writable again')")
    assert not thaw(db.conninfo(DB), state).changed  # twice is harmless


def test_thaw_restores_a_previous_database_setting_exactly(db, tmp_path):
    state = str(tmp_path / "freeze.json")
    with db.connect(autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {DB} SET default_transaction_read_only = off")
        conn.execute(f"ALTER DATABASE {DB} SET work_mem = '8MB'")
    before = database_setting(db)
    freeze(db.conninfo(DB), state, drain_seconds=0)
    assert "default_transaction_read_only=on" in database_setting(db)
    thaw(db.conninfo(DB), state)
    assert database_setting(db) == before


def test_check_mode_changes_nothing(db, tmp_path):
    state = tmp_path / "freeze.json"
    assert freeze(db.conninfo(DB), str(state), check_mode=True).changed
    assert not state.exists() and database_setting(db) == []


def test_a_role_that_overrides_the_setting_is_refused_by_name(db, tmp_path):
    with db.connect(autocommit=True) as conn:
        conn.execute(f"ALTER ROLE writer IN DATABASE {DB} SET default_transaction_read_only = off")
    reset = f'ALTER ROLE "writer" IN DATABASE "{DB}" RESET "default_transaction_read_only"'
    with pytest.raises(FreezeError, match=reset):
        freeze(db.conninfo(DB), str(tmp_path / "freeze.json"))
    assert database_setting(db) == [] and not (tmp_path / "freeze.json").exists()
