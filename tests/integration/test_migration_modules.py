"""The migration modules through real ansible-playbook on this machine,
against the two test servers: check mode is the preflight only, a real run
migrates, the comparison passes and then fails on a change naming it, and
no password reaches the output."""

from __future__ import annotations

from ansiblerun import run_module
from migrationdb import DBNAME, MIGRATOR_PASSWORD, OWNER
from pgserver import SUPERUSER


def ends(servers) -> dict:
    target = servers.target.conninfo(DBNAME, user="migrator", password="")
    target = " ".join(p for p in target.split() if not p.startswith("password="))
    return {"source": servers.source_conninfo(),
            "target": f"{target} sslmode=verify-full sslrootcert={servers.ca_file}",
            "target_password": MIGRATOR_PASSWORD}


def test_preflight_migrate_and_compare_modules(repo, servers, tmp_path):
    connection = ends(servers)
    rc, out, log = run_module(repo, tmp_path, "pg_migrate", {**connection, "target_role": OWNER}, check=True)
    assert rc == 0 and out["changed"] and out["preflight"]["ok"], log
    assert "tables" not in out
    with servers.target.connect(DBNAME) as conn:  # check mode copied nothing
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'app'").fetchone()[0] == 0

    rc, out, log = run_module(repo, tmp_path, "pg_migrate", {**connection, "target_role": OWNER, "jobs": 2,
                                                             "status_file": str(tmp_path / "status.json")})
    assert rc == 0 and out["changed"], log
    assert out["rows"] == sum(t["rows"] for t in out["tables"]) > 20000
    assert {"table", "rows", "bytes", "seconds", "format"} <= set(out["tables"][0])
    assert MIGRATOR_PASSWORD not in log

    # the source's objects are the superuser's, the target's the owner role's
    compared = {**connection, "role_map": {SUPERUSER: OWNER}}
    rc, out, log = run_module(repo, tmp_path, "pg_compare", compared)
    assert rc == 0 and out["equal"] and not out["changed"], log

    with servers.target.connect(DBNAME, autocommit=True) as conn:
        conn.execute("UPDATE app.events SET payload = '{}' WHERE id = 42")
    rc, out, log = run_module(repo, tmp_path, "pg_compare", compared)
    assert rc != 0 and not out["equal"]
    assert "source and target differ: table app.events" in out["msg"] and "changed ['42']" in out["msg"]

    rc, out, log = run_module(repo, tmp_path, "pg_preflight", connection)
    assert rc != 0 and "target database empty" in out["msg"] and "rollback.yml" in out["msg"]


def test_freeze_module_is_idempotent_and_check_mode_honest(repo, servers, tmp_path):
    args = {"source": servers.source_conninfo(), "state_file": str(tmp_path / "freeze.json"), "drain_seconds": 0}
    rc, out, _ = run_module(repo, tmp_path, "pg_source_freeze", args, check=True)
    assert rc == 0 and out["changed"] and not (tmp_path / "freeze.json").exists()
    assert [run_module(repo, tmp_path, "pg_source_freeze", args)[1]["changed"] for _ in range(2)] == [True, False]
    thawed = {**args, "state": "thawed"}
    assert [run_module(repo, tmp_path, "pg_source_freeze", thawed)[1]["changed"] for _ in range(2)] == [True, False]
