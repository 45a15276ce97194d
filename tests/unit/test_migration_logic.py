"""The pure parts of the migration: how a schema difference reads, how the
preflight sums up, how a password joins a connection string, what the
progress file says."""

from __future__ import annotations

import json

from psycopg.conninfo import conninfo_to_dict

from pgharbor.migration.migrate import StatusFile
from pgharbor.migration.preflight import PreflightReport
from pgharbor.migration.schemacompare import compare_described
from pgharbor.pg.conninfo import connection_options, conninfo


def test_schema_differences_read_like_a_diff():
    source = {"indexes": {"app.a_idx": "CREATE INDEX a_idx ON app.a (x)",
                          "app.b_idx": "CREATE INDEX b_idx ON app.b (y)"},
              "tables": {"app.a": "", "app.b": ""}}
    target = {"indexes": {"app.a_idx": "CREATE INDEX a_idx ON app.a (x, z)",
                          "app.c_idx": "CREATE INDEX c ON app.c (z)"},
              "tables": {"app.a": "", "app.b": ""}}
    report = compare_described(source, target)
    assert not report.equal
    assert report.diff_text().splitlines() == [
        "indexes:",
        "  - app.b_idx",
        "  + app.c_idx",
        "  ~ app.a_idx",
        "      source: CREATE INDEX a_idx ON app.a (x)",
        "      target: CREATE INDEX a_idx ON app.a (x, z)",
    ]
    assert report.counts == {"indexes": 2, "tables": 2}
    assert compare_described(source, source).equal and compare_described(source, source).diff_text() == ""


def test_preflight_is_ok_until_a_check_fails_and_fixes_show_only_for_problems():
    report = PreflightReport()
    report.add("encoding", "ok", "UTF8", "never shown")
    report.add("primary keys", "warn", "1 table without one", "add one")
    assert report.ok and report.checks[0].fix == ""
    report.add("target TLS", "fail", "not verified", "set sslmode=verify-full")
    assert not report.ok and [c.name for c in report.failed] == ["target TLS"]
    assert report.summary().splitlines() == [
        "OK   encoding: UTF8",
        "WARN primary keys: 1 table without one -> add one",
        "FAIL target TLS: not verified -> set sslmode=verify-full",
    ]
    assert report.as_dict()["ok"] is False


def test_a_password_joins_the_connection_string_quoted_and_is_masked_in_the_spec():
    params = {"target": "host=db1 dbname=buffer user=migrator", "target_password": "it's a 'secret' \\ x"}
    assert conninfo_to_dict(conninfo(params, "target"))["password"] == "it's a 'secret' \\ x"
    assert conninfo({"target": "host=db1", "target_password": None}, "target") == "host=db1"
    spec = connection_options("source", "target")
    assert spec["source_password"]["no_log"] and spec["target_password"]["no_log"]
    assert spec["source"] == {"type": "str", "required": True}


def test_the_progress_file_tells_phase_bytes_and_time_left(tmp_path):
    path = tmp_path / "status.json"
    status = StatusFile(str(path), total_bytes=1000)
    status.set_phase("rows")
    status.table("app.a", 250, finished=True)
    status.table("app.b", 100, finished=False)
    status._write(force=True)
    written = json.loads(path.read_text())
    assert written["phase"] == "rows" and written["bytes"] == 350 and written["tables_done"] == 1
    assert written["tables_in_progress"] == {"app.b": 100}
    assert written["eta_seconds"] is not None and written["eta_seconds"] >= 0
    assert not (tmp_path / "status.tmp").exists()
