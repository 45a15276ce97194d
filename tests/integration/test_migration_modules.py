"""The migration modules through real ansible-playbook on this machine,
against the two test servers: check mode is the preflight only, a real run
migrates, the comparison passes and then fails on a change naming it, and
no password reaches the output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from migrationdb import DBNAME, MIGRATOR_PASSWORD, OWNER

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def run_module(repo: Path, tmp_path: Path, module: str, args: dict, check: bool = False) -> tuple[int, dict, str]:
    """Run one module task; its result comes from the json callback."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                         "tasks": [{"name": "run", module: args}]}]))
    argv = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
            json.dumps({"ansible_python_interpreter": sys.executable}), str(playbook)]
    if check:
        argv.append("--check")
    done = subprocess.run(argv, cwd=repo, capture_output=True, text=True, check=False,
                          env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    result = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return done.returncode, result, done.stdout + done.stderr


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

    rc, out, log = run_module(repo, tmp_path, "pg_compare", connection)
    assert rc == 0 and out["equal"] and not out["changed"], log

    with servers.target.connect(DBNAME, autocommit=True) as conn:
        conn.execute("UPDATE app.events SET payload = '{}' WHERE id = 42")
    rc, out, log = run_module(repo, tmp_path, "pg_compare", connection)
    assert rc != 0 and not out["equal"]
    assert "source and target differ: table app.events" in out["msg"] and "changed ['42']" in out["msg"]

    rc, out, log = run_module(repo, tmp_path, "pg_preflight", connection)
    assert rc != 0 and "target database empty" in out["msg"] and "rollback.yml" in out["msg"]


def test_freeze_module_is_idempotent_and_check_mode_honest(repo, servers, tmp_path):
    args = {"db": servers.source_conninfo(), "state_file": str(tmp_path / "freeze.json"), "drain_seconds": 0}
    rc, out, _ = run_module(repo, tmp_path, "pg_source_freeze", args, check=True)
    assert rc == 0 and out["changed"] and not (tmp_path / "freeze.json").exists()
    assert [run_module(repo, tmp_path, "pg_source_freeze", args)[1]["changed"] for _ in range(2)] == [True, False]
    thawed = {**args, "state": "thawed"}
    assert [run_module(repo, tmp_path, "pg_source_freeze", thawed)[1]["changed"] for _ in range(2)] == [True, False]
