"""A bad role setting stops before any task runs, with a message that names
the setting. Runs real ansible-playbook; nothing on this machine is changed
because validation fails first."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def run_role(repo, tmp_path, role, extra_vars):
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  roles:\n"
        f"    - role: {role}\n"
    )
    args = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "--check",
            "-e", json.dumps(extra_vars), str(playbook)]
    return subprocess.run(args, cwd=repo, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("base_apt_cache_valid_time", "soon"),
        ("base_packages", {"not": "a list"}),
        ("pki_mode", "make-it-up"),
        ("pki_clients", [{"name": "app"}]),
        ("pg_client_connect_timeout", "soon"),
        ("pg_client_services", [{"name": "app", "host": "db1", "dbname": "app", "user": "u", "sslmode": "prefer"}]),
        ("monitoring_server_scrape_jobs", [{"name": "node", "port": "ninety", "targets": {}}]),
        ("monitoring_server_receivers", "ops@example.com"),
    ],
)
def test_bad_setting_is_named(repo, tmp_path, setting, value):
    role = next(r for r in ("base", "pki", "pg_client", "monitoring_server") if setting.startswith(f"{r}_"))
    result = run_role(repo, tmp_path, role, {setting: value})
    assert result.returncode != 0
    assert "Validating arguments against arg spec" in result.stdout
    assert setting in result.stdout


def test_a_threshold_no_rule_reads_is_named_before_anything_changes(repo, tmp_path):
    result = run_role(repo, tmp_path, "monitoring_server", {
        "monitoring_server_listen_address": "127.0.0.1",
        "monitoring_server_scrape_jobs": [], "monitoring_server_receivers": [{"name": "ops"}],
        "monitoring_server_thresholds": {"disk_full_hour": 12}})
    assert result.returncode != 0
    assert "monitoring_server_thresholds names disk_full_hour, which no rule reads" in result.stdout
    assert "disk_full_hours" in result.stdout


def test_a_report_receiver_that_is_not_a_receiver_is_named_before_anything_changes(repo, tmp_path):
    result = run_role(repo, tmp_path, "monitoring_server", {
        "monitoring_server_listen_address": "127.0.0.1",
        "monitoring_server_scrape_jobs": [], "monitoring_server_receivers": [{"name": "ops"}, {"name": "pager"}],
        "monitoring_server_report_receiver": "reports"})
    assert result.returncode != 0
    assert "monitoring_server_report_receiver is reports, which is not the name of one of" in result.stdout
    assert "(ops, pager)" in result.stdout
