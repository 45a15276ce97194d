"""The throwaway-server fixture that later integration tests stand on."""

import psycopg
import pytest


def test_server_is_postgresql_15_on_loopback(pg_server):
    with pg_server.connect() as conn:
        version = conn.execute("SHOW server_version_num").fetchone()[0]
        listen = conn.execute("SHOW listen_addresses").fetchone()[0]
    assert int(version) // 10000 == 15
    assert listen == "127.0.0.1"


def test_data_round_trip_through_copy(pg_server):
    rows = [(i, f"row {i}") for i in range(1000)]
    with pg_server.connect() as conn:
        conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY, label text)")
        with conn.cursor() as cur, cur.copy("COPY t (id, label) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        got = conn.execute("SELECT id, label FROM t ORDER BY id").fetchall()
    assert got == rows


def test_a_setting_with_spaces_and_percent_signs_arrives_whole(pg_server_factory):
    prefix = "%m [%p] 'quoted' two words "
    server = pg_server_factory({"log_line_prefix": prefix, "application_name": "two words"})
    with server.connect() as conn:
        assert conn.execute("SHOW log_line_prefix").fetchone()[0] == prefix
        assert conn.execute("SELECT setting FROM pg_settings WHERE name = 'application_name'").fetchone()[0] \
            == "two words"


def test_wrong_password_is_refused(pg_server):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.conninfo(password="not-the-password")).close()


def test_servers_are_independent_and_removed(pg_server_factory):
    first, second = pg_server_factory(), pg_server_factory()
    assert first.port != second.port
    with first.connect(autocommit=True) as conn:
        conn.execute("CREATE DATABASE only_on_first")
    with second.connect() as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert "only_on_first" not in names

    first.remove()
    assert not first.basedir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(first.conninfo()).close()
