"""playbooks/migrate.yml and rollback.yml on the lab, as an operator runs
them, in order. `make lab` has migrated the application; the story goes on:
rollback (twice), a check-mode migration (the preflight alone), a failing
migration that rolls back by itself, and a migration again. Each step is
checked from the application's side (its service, its OS user) and on both
databases. The lab ends migrated, as `make lab` left it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from labhosts import REPO, lab_host

LEGACY, DB1 = lab_host("legacy"), lab_host("db1")
MIGRATE, ROLLBACK = "migrate", "rollback"
NOT_PERMITTED = 'role "migrator" is not permitted to log in'


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("reports")


def sql(host, user: str, statement: str, db: str = "buffer", service: bool = False):
    target = "service=buffer" if service else f"dbname={db}"
    return host.run(f"runuser -u {user} -- psql '{target}' -XAtc \"{statement}\"")


def app_sees() -> str:
    """Where the application lands, through its own service: db|tcp|ssl|read-only."""
    out = sql(LEGACY, "buffer_app", "SELECT current_database(), inet_server_addr() IS NOT NULL, coalesce((SELECT ssl "
              "FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false), current_setting('transaction_read_only')",
              service=True)
    assert out.rc == 0, out.stderr
    return out.stdout.strip()


def rolled_back() -> set[str]:
    """The target databases rollbacks have kept (a lab rolled back before this run may hold some)."""
    return {name for name in target_databases() if name.startswith("buffer_rolled_back_")}


def target_databases() -> dict[str, str]:
    out = sql(DB1, "postgres", "SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database "
              "WHERE datname LIKE 'buffer%'", db="postgres")
    return dict(line.split("|", 1) for line in out.stdout.strip().splitlines())


def target_tables() -> int:
    return int(sql(DB1, "postgres", "SELECT count(*) FROM pg_tables WHERE schemaname = 'buffer'").stdout)


@pytest.fixture(scope="module")
def migrator_password() -> str:
    """The migrator's real password, from the lab's vault."""
    command = [str(Path(sys.executable).parent / "ansible-vault"), "view", "--vault-id",
               f"lab@{REPO / 'lab/vault-password'}", str(REPO / "inventories/lab/group_vars/all/vault.yml")]
    vault = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return re.search(r"^vault_migrator_password: *['\"]?(.*?)['\"]?$", vault, re.M).group(1)


def migrator_logs_in(password: str):
    """The migrator, with its right password, from the application host to db1 (the pg_client service's
    host, port and verify-full TLS)."""
    return LEGACY.run(f"runuser -u buffer_app -- env PGPASSWORD={shlex.quote(password)} "
                      "psql 'service=buffer_remote user=migrator' -XAtc 'SELECT current_user'")


def assert_migrator_retired(password: str) -> None:
    result = migrator_logs_in(password)
    assert result.rc != 0 and NOT_PERMITTED in result.stderr, (result.stdout, result.stderr)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}
            for host, rest in re.findall(r"^(\S+)\s+: (ok=.*)$", stdout, re.M)}


def latest_report(reports: Path) -> dict:
    return json.loads(sorted(reports.glob("migration-legacy-*.json"))[-1].read_text())


@pytest.fixture(scope="module")
def kept_before() -> set[str]:
    return rolled_back()


def test_the_lab_starts_migrated(migrator_password, kept_before):
    assert app_sees() == "buffer|t|t|off"
    assert target_databases()["buffer"].startswith("pgharbor: migrated")
    assert_migrator_retired(migrator_password)  # as migrate.yml left it


def test_rollback_restores_the_source_and_keeps_what_was_written_on_the_target(run_playbook, kept_before):
    written = sql(LEGACY, "buffer_app", "INSERT INTO buffer.customers (name) VALUES ('written on db1')", service=True)
    assert written.rc == 0, written.stderr
    run = run_playbook(ROLLBACK)
    assert run.returncode == 0, run.stdout
    assert app_sees() == "buffer|f|f|off"
    again = sql(LEGACY, "buffer_app", "INSERT INTO buffer.customers (name) VALUES ('legacy again')", service=True)
    assert again.rc == 0
    kept = rolled_back() - kept_before
    assert len(kept) == 1 and target_tables() == 0
    assert sql(DB1, "postgres", "SELECT count(*) FROM buffer.customers WHERE name = 'written on db1'",
               db=kept.pop()).stdout.strip() == "1"


def test_rollback_twice_changes_nothing(run_playbook):
    run = run_playbook(ROLLBACK)
    assert run.returncode == 0, run.stdout
    assert all(counts["changed"] == 0 for counts in recap(run.stdout).values()), run.stdout


def test_check_mode_runs_the_preflight_and_changes_nothing(run_playbook, reports, migrator_password):
    assert_migrator_retired(migrator_password)  # as rollback.yml left it
    run = run_playbook(MIGRATE, "--check", extra_vars={"migration_report_dir": str(reports)})
    assert run.returncode == 0, run.stdout
    assert "OK   target TLS: " in run.stdout and "verify-full" in run.stdout
    assert "OK   target database empty: buffer holds no tables" in run.stdout
    assert target_tables() == 0 and app_sees() == "buffer|f|f|off"
    assert not list(reports.glob("*.json"))
    assert_migrator_retired(migrator_password)  # opened for the preflight, closed again


def test_a_failed_comparison_rolls_back_by_itself(run_playbook, reports, kept_before):
    # Without ignoring the target's own users, their grants differ from the source's.
    run = run_playbook(MIGRATE, extra_vars={"migration_report_dir": str(reports), "migration_compare_ignore_roles": []})
    assert run.returncode != 0
    assert 'Rolled back at "Compare schema and data, source against target"' in run.stdout
    assert "schema grants" in run.stdout
    assert app_sees() == "buffer|f|f|off"
    assert sql(LEGACY, "postgres", "SELECT nextval('buffer.events_id_seq')").rc == 0  # thawed
    assert latest_report(reports)["verdict"] == "rolled back"
    assert target_tables() == 0
    assert len(rolled_back() - kept_before) == 2


def test_migrate_copies_compares_and_cuts_over(run_playbook, reports):
    customers = sql(LEGACY, "postgres", "SELECT count(*) FROM buffer.customers").stdout.strip()
    run = run_playbook(MIGRATE, extra_vars={"migration_report_dir": str(reports)})
    assert run.returncode == 0, run.stdout
    assert app_sees() == "buffer|t|t|off"
    report = latest_report(reports)
    assert report["verdict"] == "migrated" and report["compare"]["equal"] and report["preflight"]["ok"]
    assert {t["table"]: t["rows"] for t in report["copy"]["tables"]}["buffer.customers"] == int(customers)
    assert report["safety_backup"]["toc_entries"] > 10
    assert (reports / f"migration-legacy-{report['run']}.md").read_text().count("| yes |") == 3
    # What the application wrote on the source after the rollback came across.
    seen = sql(LEGACY, "buffer_app", "SELECT count(*) FROM buffer.customers WHERE name = 'legacy again'", service=True)
    assert seen.stdout.strip() == "1"
    # The source is frozen: nothing written there after the copy can be lost.
    frozen = sql(LEGACY, "postgres", "INSERT INTO buffer.customers (name) VALUES ('too late')")
    assert frozen.rc != 0 and "read-only transaction" in frozen.stderr
    assert target_databases()["buffer"].startswith("pgharbor: migrated")


def test_the_migrator_is_retired_after_the_cutover(migrator_password):
    """Its password, right as it is, no longer opens a session (the migration could log in: it copied);
    the application's own login still does."""
    assert_migrator_retired(migrator_password)
    wrong = migrator_logs_in("not-the-password")
    assert wrong.rc != 0 and "password authentication failed" in wrong.stderr
    assert app_sees() == "buffer|t|t|off"
