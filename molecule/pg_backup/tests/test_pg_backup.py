"""The backup agent on a real DB host: the timer fires and its backup
restores; a failed run shows in the journal and in the status; the host
holds no private key and the backup role cannot write."""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

import testinfra

HOST = testinfra.get_host("podman://pgb-db")
GPG_DIR = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "gpg"
SUPERUSER = "host=/var/run/postgresql dbname=postgres user=postgres"


def agent(args: str, env: str = ""):
    return HOST.run(f"{env} runuser -u postgres -- pgharbor-backup {args}")


def backups() -> list[dict]:
    result = agent("list --json")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def wait_for_timer_backup(timeout: float = 100) -> list[dict]:
    deadline = time.monotonic() + timeout
    while not (found := backups()):
        assert time.monotonic() < deadline, \
            HOST.run("systemctl list-timers --all; journalctl -u pgharbor-backup").stdout
        time.sleep(3)
    return found


def test_settings_and_directory():
    directory = HOST.file("/var/backups/pgharbor")
    assert directory.is_directory and directory.user == "postgres" and directory.mode == 0o700
    config = HOST.file("/etc/pgharbor/backup.json")
    assert config.mode == 0o640 and config.group == "postgres"
    settings = json.loads(config.content_string)
    assert settings["recipients"] == [(GPG_DIR / "ops.fpr").read_text().strip(),
                                      (GPG_DIR / "escrow.fpr").read_text().strip()]
    assert "Ansible managed" in settings["_managed"]


def test_timer_fires_and_its_backup_restores():
    assert HOST.service("pgharbor-backup.timer").is_enabled
    assert HOST.service("pgharbor-backup.timer").is_running
    [first, *_] = wait_for_timer_backup()
    assert first["tables"]["app.customers"]["rows"] == 1000
    # rows behind row-level security are in the backup too (the backup role bypasses it)
    assert first["tables"]["app.secrets"]["rows"] == 50
    journal = HOST.run("journalctl -u pgharbor-backup.service --no-pager").stdout
    assert f"backup {first['id']}" in journal
    key = (GPG_DIR / "escrow.sec.asc").read_text()
    checked = agent(f"verify --backup {first['id']} --level restore --server {shlex.quote(SUPERUSER)}",
                    env=f"PGHARBOR_PRIVATE_KEY={shlex.quote(key)}")
    assert checked.rc == 0, checked.stderr
    assert "checksum, readable, restore passed" in checked.stdout
    status = agent("status")
    assert status.rc == 0 and "health:      ok" in status.stdout, status.stdout


def test_failed_run_shows_in_journal_and_status():
    wait_for_timer_backup()
    HOST.run_test("systemctl stop postgresql@15-main")
    try:
        run = HOST.run("systemctl start pgharbor-backup.service")
        assert run.rc != 0
        journal = HOST.run("journalctl -u pgharbor-backup.service --no-pager -n 20").stdout
        assert "backup failed: cannot connect to the database (pg_backup_db)" in journal
        status = agent("status")
        assert status.rc == 1 and "the last run failed: cannot connect" in status.stdout
    finally:
        HOST.run_test("systemctl start postgresql@15-main")
    again = HOST.run("systemctl start pgharbor-backup.service")
    assert again.rc == 0, HOST.run("journalctl -u pgharbor-backup.service --no-pager -n 20").stdout
    assert agent("status").rc == 0


def test_no_private_key_on_the_host():
    secret = HOST.run("runuser -u postgres -- gpg --homedir /etc/pgharbor/keyring --batch --list-secret-keys")
    assert secret.rc == 0 and secret.stdout.strip() == ""
    public = HOST.run("runuser -u postgres -- gpg --homedir /etc/pgharbor/keyring --batch --with-colons --list-keys")
    assert public.stdout.count("\npub:") + public.stdout.startswith("pub:") == 2


def test_backup_role_reads_but_cannot_write():
    conninfo = "host=/var/run/postgresql dbname=appdb user=backup"
    read = HOST.run(f"runuser -u postgres -- psql {shlex.quote(conninfo)} -XAtc 'SELECT count(*) FROM app.customers'")
    assert read.rc == 0 and read.stdout.strip() == "1000"
    write = HOST.run(f"runuser -u postgres -- psql {shlex.quote(conninfo)} -Xc 'DELETE FROM app.customers'")
    assert write.rc != 0 and "permission denied" in write.stderr
    # no other system user may log in as backup
    other = HOST.run(f"runuser -u nobody -- psql {shlex.quote(conninfo)} -Xc 'SELECT 1'")
    assert other.rc != 0


def test_bad_key_refused_before_dumping():
    """A key missing from the keyring stops the run with the setting named;
    nothing is written (checked through a copy of the settings)."""
    settings = json.loads(HOST.file("/etc/pgharbor/backup.json").content_string)
    settings["recipients"] = ["AB" * 20]
    HOST.run_test(f"echo {shlex.quote(json.dumps(settings))} > /tmp/bad.json && chmod 644 /tmp/bad.json")
    before = len(backups())
    bad = agent("--config /tmp/bad.json run")
    assert bad.rc == 1 and "is not in the keyring" in bad.stderr and "pg_backup_public_keys" in bad.stderr
    assert len(backups()) == before
    HOST.run_test("rm -f /tmp/bad.json")


def live_customers() -> int:
    result = HOST.run("runuser -u postgres -- psql -d appdb -XAtc 'SELECT count(*) FROM app.customers'")
    assert result.rc == 0, result.stderr
    return int(result.stdout)


def test_playbooks_backup_drill_restore_swap_undo(run_playbook):
    """What an operator runs: an audited backup, a restore drill, a restore
    that waits for confirmation, the swap, and its undo."""
    key = {"backup_private_key": (GPG_DIR / "escrow.sec.asc").read_text()}
    taken = run_playbook("../../playbooks/backup.yml", extra_vars={"backup_reason": "molecule export"})
    assert taken.returncode == 0, taken.stdout
    audit = json.loads(HOST.file("/var/log/pgharbor/audit.jsonl").content_string.splitlines()[-1])
    assert audit["reason"] == "molecule export" and audit["who"] and audit["database"] == "appdb"
    assert audit["backup"] in taken.stdout

    refused = run_playbook("../../playbooks/verify_backups.yml")
    assert refused.returncode != 0 and "backup_private_key" in refused.stdout
    drill = run_playbook("../../playbooks/verify_backups.yml", extra_vars=key)
    assert drill.returncode == 0, drill.stdout
    # (the callback folds long messages: single words only)
    assert "restores:" in drill.stdout and "pg_amcheck" in drill.stdout and "RTO" in drill.stdout
    assert "PRIVATE KEY" not in drill.stdout

    # the application loses data after the backup
    HOST.run_test("runuser -u postgres -- psql -d appdb -Xc 'DELETE FROM app.customers WHERE id > 10'")
    preview = run_playbook("../../playbooks/restore.yml", extra_vars={**key, "restore_backup": audit["backup"]})
    assert preview.returncode == 0, preview.stdout
    assert "restore_confirm=true" in preview.stdout and "app.customers" in preview.stdout
    assert live_customers() == 10
    swapped = run_playbook("../../playbooks/restore.yml", extra_vars={**key, "restore_backup": audit["backup"],
                                                                      "restore_confirm": True})
    assert swapped.returncode == 0, swapped.stdout
    assert live_customers() == 1000
    # the application's login still works on the swapped-in database
    assert HOST.run("runuser -u postgres -- psql 'host=/var/run/postgresql dbname=appdb user=backup' "
                    "-XAtc 'SELECT count(*) FROM app.customers'").stdout.strip() == "1000"
    undone = run_playbook("../../playbooks/restore.yml", extra_vars={"restore_undo": True})
    assert undone.returncode == 0 and "appdb_undone_" in undone.stdout, undone.stdout
    assert live_customers() == 10
    again = run_playbook("../../playbooks/restore.yml", extra_vars={"restore_undo": True})
    assert again.returncode == 0 and "recorded:" in again.stdout, again.stdout
    HOST.run_test("runuser -u postgres -- psql -d appdb -Xc \"INSERT INTO app.customers "
                  "SELECT i, 'customer ' || i FROM generate_series(11, 1000) i\"")
