"""pg_backup and pg_dump_verify through real ansible-playbook: check mode
only checks, a backup is taken and audited, verified up to a restore, the
private key and passwords never reach the output, failures name the cause."""

from __future__ import annotations

import json

from ansiblerun import run_module
from backuptest import DBNAME, keyring_with, settings, write_config


def test_backup_and_verify_modules(repo, awkward_server, backup_keys, tmp_path):
    directory = tmp_path / "tier1"
    directory.mkdir()
    keyring = keyring_with(tmp_path, backup_keys.ops)
    s = settings(awkward_server, directory, keyring, [backup_keys.ops.fingerprint])
    # the password comes as an option, not in the configuration
    s.conninfo = awkward_server.conninfo(DBNAME, password="").replace("password=''", "")
    config = write_config(tmp_path / "backup.json", s)
    audit_log = tmp_path / "audit.jsonl"
    common = {"config": str(config), "db_password": awkward_server.password}

    rc, out, log = run_module(repo, tmp_path, "pg_backup", common, check=True)
    assert rc == 0 and out["changed"], log
    assert out["checks"]["database"] == DBNAME and out["checks"]["recipients"] == [backup_keys.ops.fingerprint]
    assert list(directory.glob("*.manifest.json")) == []

    rc, out, log = run_module(repo, tmp_path, "pg_backup", {**common, "requested_by": "alice",
                                                            "reason": "export", "audit_log": str(audit_log)})
    assert rc == 0 and out["changed"], log
    assert out["manifest"]["tables"]["app.events"]["rows"] > 0
    [entry] = [json.loads(line) for line in audit_log.read_text().splitlines()]
    assert entry["who"] == "alice" and entry["backup"] == out["backup"] and entry["where"] == [out["artefact"]]
    assert awkward_server.password not in log

    verify = {"config": str(config), "level": "restore", "private_key": backup_keys.ops.secret,
              "passphrase": backup_keys.ops.passphrase, "server": awkward_server.conninfo(password=""),
              "server_password": awkward_server.password}
    rc, out, log = run_module(repo, tmp_path, "pg_dump_verify", verify)
    assert rc == 0 and not out["changed"], log
    assert out["verification"]["passed"] == ["checksum", "readable", "restore"]
    assert out["age_seconds"] >= 0
    assert "PRIVATE KEY" not in log and backup_keys.ops.passphrase not in log

    rc, out, log = run_module(repo, tmp_path, "pg_dump_verify", {**verify, "passphrase": "wrong"})
    assert rc != 0 and not out["verification"]["ok"], log
    assert "readable" in out["msg"]

    rc, out, log = run_module(repo, tmp_path, "pg_dump_verify", {"config": str(config), "backup": "before:2020-01-01"})
    assert rc != 0 and "started before 2020-01-01" in out["msg"], log


def test_backup_module_names_bad_settings(repo, tmp_path):
    rc, out, log = run_module(repo, tmp_path, "pg_backup", {"config": str(tmp_path / "absent.json"),
                                                            "directory": str(tmp_path)})
    assert rc != 0
    assert "db (pg_backup_db)" in out["msg"] and "recipients (pg_backup_recipients)" in out["msg"], log
