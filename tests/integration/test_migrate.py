"""pg_migrate's logic between two real PostgreSQL 15 servers on loopback: the
awkward database arrives whole, in the target's least-privilege model."""

from __future__ import annotations

import json

import psycopg
import pytest
from migrationdb import OWNER
from psycopg import sql

from pgharbor.migration.datacompare import compare_data
from pgharbor.migration.migrate import MigrationError, migrate
from pgharbor.pg import catalog
from pgharbor.pg.session import connect


def run_migration(servers, tmp_path, **kwargs):
    return migrate(servers.source_conninfo(), servers.target_conninfo(), target_role=OWNER,
                   status_path=str(tmp_path / "status.json"), **kwargs)


def content(conninfo: str) -> dict[str, tuple[int, str]]:
    """Per table: row count and a digest of the sorted rows' text forms."""
    with connect(conninfo) as conn:
        found = {}
        for table in catalog.tables(conn):
            found[table.label] = conn.execute(
                sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) "
                        "FROM ONLY {} t").format(table.ident)).fetchone()
        return found


def test_the_awkward_database_arrives_whole(servers, tmp_path):
    result = run_migration(servers, tmp_path, jobs=3)

    expected = content(servers.source_conninfo())
    assert content(servers.target_conninfo()) == expected
    assert {t.table for t in result.tables} == set(expected)
    assert result.rows == sum(rows for rows, _ in expected.values())
    # Built-in types only travel binary; enums, domains, composites as text,
    # and catalog references (regclass...) by name.
    formats = {t.table: t.format for t in result.tables}
    assert formats["app.events"] == "binary" and formats["app.everything"] == "text"
    assert formats["app.refs"] == "text"
    assert json.loads((tmp_path / "status.json").read_text())["phase"] == "done"


def test_partitions_and_inheritance_hold_each_row_once(servers, tmp_path):
    target = servers.target
    run_migration(servers, tmp_path)
    with target.connect("appdb") as conn:
        assert conn.execute("SELECT count(*) FROM app.measurements").fetchone()[0] == 401
        assert conn.execute("SELECT count(*) FROM app.animals").fetchone()[0] == 3
        assert conn.execute("SELECT count(*) FROM ONLY app.animals").fetchone()[0] == 1


def test_triggers_did_not_fire_during_the_load_but_exist_after(servers, tmp_path):
    target = servers.target
    run_migration(servers, tmp_path)
    with target.connect("appdb") as conn:
        assert conn.execute("SELECT count(*) FROM app.audit").fetchone()[0] == 1
        conn.execute("INSERT INTO app.events (payload) VALUES ('{}')")
        assert conn.execute("SELECT count(*) FROM app.audit").fetchone()[0] == 2


def test_sequences_large_objects_and_matviews(servers, tmp_path):
    source, target = servers.source, servers.target
    result = run_migration(servers, tmp_path)
    with source.connect("appdb") as src, target.connect("appdb") as dst:
        assert [(s.label, s.last_value, s.is_called) for s in catalog.sequences(dst)] == \
               [(s.label, s.last_value, s.is_called) for s in catalog.sequences(src)]
        los = "SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid"
        assert dst.execute(los).fetchall() == src.execute(los).fetchall()
        assert result.large_objects == 2
        assert dst.execute("SELECT n FROM app.event_count").fetchone()[0] == 20001


def test_objects_belong_to_the_owner_role_and_policies_survive(servers, tmp_path):
    target = servers.target
    run_migration(servers, tmp_path)
    with target.connect("appdb") as conn:
        owners = conn.execute(
            """SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname IN ('app', 'Odd Schema ü')""").fetchall()
        assert owners == [("app_owner",)]
        assert conn.execute("SELECT count(*) FROM pg_policy").fetchone()[0] == 1
        assert conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = 'app.secrets'::regclass").fetchone()[0]


def test_a_target_that_is_not_empty_is_refused(servers, tmp_path):
    target = servers.target
    with target.connect("appdb", autocommit=True) as conn:
        conn.execute("CREATE TABLE app.already_here (id integer)")
    with pytest.raises(MigrationError,
                       match=r"the target database is not empty \(1 relations, e.g. app.already_here\)"):
        run_migration(servers, tmp_path)
    with target.connect("appdb") as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'app'::regnamespace").fetchone()[0] == 1


def test_a_wrong_password_is_reported_by_the_server(servers, tmp_path):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed for user \"migrator\""):
        migrate(servers.source_conninfo(), servers.target_conninfo(password="wrong"), target_role=OWNER)


# --- comparing: equal after the migration, and each kind of difference found --

def test_the_migrated_database_compares_equal(servers, tmp_path):
    run_migration(servers, tmp_path)
    report = compare_data(servers.source_conninfo(), servers.target_conninfo(), chunk_rows=1000)
    assert report.equal, report
    events = next(t for t in report.tables if t.table == "app.events")
    assert events.source_rows == 20001 and events.chunks == 21


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ("UPDATE app.events SET payload = '{\"n\": 0}' WHERE id = 15000",
         {"table": "app.events", "changed": ["15000"]}),
        ("DELETE FROM app.events WHERE id = 7", {"table": "app.events", "missing_on_target": ["7"]}),
        ("SET session_replication_role = replica; INSERT INTO app.events (id, payload) VALUES (99999, '{}')",
         {"table": "app.events", "extra_on_target": ["99999"]}),
        ("UPDATE app.nokey SET b = 'y' WHERE b = 'x' AND ctid = (SELECT min(ctid) FROM app.nokey WHERE b = 'x')",
         {"table": "app.nokey"}),
        ("SELECT setval('app.invoice_no', 5000)",
         {"sequence": "app.invoice_no: source (1007, True), target (5000, True)"}),
        ("SELECT lo_put(424242, 0, 'J')", {"large_object": "large object 424242: content differs"}),
    ],
    ids=["changed-cell", "deleted-row", "extra-row", "no-key-table", "sequence", "large-object"],
)
def test_each_difference_is_found_and_named(servers, tmp_path, change, expect):
    target = servers.target
    run_migration(servers, tmp_path)
    with target.connect("appdb", autocommit=True) as conn:
        conn.execute(change)
    report = compare_data(servers.source_conninfo(), servers.target_conninfo(), chunk_rows=1000)
    assert not report.equal
    if "table" in expect:
        differing = [t for t in report.tables if not t.equal]
        assert [t.table for t in differing] == [expect["table"]]
        for kind in ("changed", "missing_on_target", "extra_on_target"):
            if kind in expect:
                assert getattr(differing[0], kind) == expect[kind]
    if "sequence" in expect:
        assert report.sequences == [expect["sequence"]]
    if "large_object" in expect:
        assert report.large_objects == [expect["large_object"]]
