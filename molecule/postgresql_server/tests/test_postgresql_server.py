"""The server as its clients see it: from pg-client, over the scenario's
network, the right people get in with verified TLS and nobody else does."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
import testinfra

SERVER = testinfra.get_host("podman://pg-server")
CLIENT = testinfra.get_host("podman://pg-client")
PASSWORDS = {
    "app_rw": "rw-Secret:with\\odd chars",
    "app_ro": "ro-secret-2",
    "migrator": "migrator-secret-3",
    "outsider": "outsider-secret-5",
}
CA = "/etc/pgharbor/pg/appdb/ca.crt"


def psql(conninfo: str, sql: str, password: str | None = None):
    """Run one statement with psql on the client; returns the command result."""
    env = f"PGPASSWORD={shlex.quote(password)} " if password else ""
    return CLIENT.run(f"{env}psql {shlex.quote(conninfo)} -XAtq -v ON_ERROR_STOP=1 -c {shlex.quote(sql)}")


def as_user(user: str, sql: str, **extra: str):
    params = {"host": "pg-server", "dbname": "appdb", "user": user, "sslmode": "verify-full", "sslrootcert": CA}
    params.update(extra)
    conninfo = " ".join(f"{k}={v}" for k, v in params.items())
    return psql(conninfo, sql, PASSWORDS.get(user))


def refused(result, message: str) -> bool:
    return result.rc != 0 and message in result.stderr


@pytest.fixture(scope="module")
def items_table():
    """A table made by the owner role after the role ran, as a migration makes
    them: the default privileges must give it to app_rw and app_ro."""
    made = SERVER.run("runuser -u postgres -- psql -d appdb -XAtq -v ON_ERROR_STOP=1 -c "
                      "'SET ROLE app_owner; CREATE TABLE IF NOT EXISTS app.items "
                      "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text)'")
    assert made.rc == 0, made.stderr
    return "app.items"


# --- the server itself ------------------------------------------------------

def test_server_runs_with_checksums_and_tls_files():
    assert SERVER.service("postgresql@15-main").is_running
    assert SERVER.service("postgresql@15-main").is_enabled
    key = SERVER.file("/etc/postgresql/15/main/tls/server.key")
    assert (key.user, key.mode) == ("postgres", 0o600)
    show = SERVER.run("runuser -u postgres -- psql -XAtc 'SHOW data_checksums'")
    assert show.stdout.strip() == "on"


def test_configuration_is_whole_managed_files():
    for name in ("postgresql.conf", "pg_hba.conf"):
        assert "Ansible managed" in SERVER.file(f"/etc/postgresql/15/main/{name}").content_string


# --- who gets in ------------------------------------------------------------

def test_service_file_connects_with_verify_full():
    result = CLIENT.run(
        "psql 'service=appdb' -XAtc "
        "\"SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()\""
    )
    assert result.rc == 0, result.stderr
    ssl, version = result.stdout.strip().split("|")
    assert ssl == "t" and version in ("TLSv1.2", "TLSv1.3")
    env = CLIENT.file("/etc/pgharbor/pg/appdb.env").content_string
    assert "PGSSLMODE=verify-full" in env and f"PGSSLROOTCERT={CA}" in env


def test_plain_tcp_is_refused():
    result = as_user("app_rw", "SELECT 1", sslmode="disable")
    assert refused(result, "no encryption"), result.stderr


@pytest.mark.parametrize(("version", "accepted"), [("tls1_1", False), ("tls1_2", True), ("tls1_3", True)])
def test_tls_versions(version, accepted):
    # SECLEVEL=0 lets the client offer TLS 1.1, so a refusal is the server's.
    result = CLIENT.run(
        f"echo | timeout 10 openssl s_client -starttls postgres -connect pg-server:5432 -{version} "
        "-cipher DEFAULT@SECLEVEL=0 -verify_return_error -CAfile " + CA
    )
    assert (result.rc == 0) == accepted, result.stdout + result.stderr


def test_a_wrong_ca_fails_verify_full():
    made = CLIENT.run(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
        "-subj /CN=impostor -keyout /tmp/other.key -out /tmp/other-ca.crt"
    )
    assert made.rc == 0, made.stderr
    result = as_user("app_rw", "SELECT 1", sslrootcert="/tmp/other-ca.crt")
    assert refused(result, "certificate verify failed"), result.stderr


def test_a_name_not_in_the_certificate_fails_verify_full():
    address = SERVER.interface("eth0").addresses[0]
    result = as_user("app_rw", "SELECT 1", host=address)
    assert refused(result, "does not match host name"), result.stderr


def test_postgres_cannot_log_in_over_the_network():
    result = as_user("postgres", "SELECT 1", password="anything")
    assert refused(result, 'pg_hba.conf rejects connection for host'), result.stderr


def test_public_cannot_connect_to_the_database():
    result = as_user("outsider", "SELECT 1")
    assert refused(result, "permission denied for database"), result.stderr


def test_the_migrator_is_retired_until_a_migration_opens_its_login(run_playbook):
    """Created NOLOGIN: the right password opens nothing. The entry point
    migrate.yml uses opens it and closes it; a converge keeps it closed."""
    retired = 'role "migrator" is not permitted to log in'
    assert refused(as_user("migrator", "SELECT 1"), retired)
    opened = run_playbook("migrator_login.yml", extra_vars={"postgresql_server_migrator_login": True})
    assert opened.returncode == 0 and "changed=1" in opened.stdout, opened.stdout
    in_use = as_user("migrator", "SET ROLE app_owner; CREATE TABLE app.made_by_the_migrator (id int); "
                                 "DROP TABLE app.made_by_the_migrator")
    assert in_use.rc == 0, in_use.stderr
    reconverged = run_playbook("converge.yml", "--limit", "pg-server")
    assert reconverged.returncode == 0, reconverged.stdout
    assert refused(as_user("migrator", "SELECT 1"), retired)
    closed = run_playbook("migrator_login.yml", extra_vars={"postgresql_server_migrator_login": False})
    assert closed.returncode == 0 and "changed=0" in closed.stdout, closed.stdout


# --- what each role may do --------------------------------------------------

def test_app_rw_writes_rows_but_cannot_create_tables(items_table):
    wrote = as_user("app_rw", f"INSERT INTO {items_table} (name) VALUES ('from app_rw') RETURNING id")
    assert wrote.rc == 0, wrote.stderr
    for schema in ("app", "public"):
        result = as_user("app_rw", f"CREATE TABLE {schema}.sneaky (id int)")
        assert refused(result, f"permission denied for schema {schema}"), result.stderr
    assert refused(as_user("app_rw", f"TRUNCATE {items_table}"), "permission denied for table items")


def test_app_ro_reads_but_cannot_write(items_table):
    read = as_user("app_ro", f"SELECT count(*) FROM {items_table}")
    assert read.rc == 0 and int(read.stdout) >= 1, read.stderr
    result = as_user("app_ro", f"INSERT INTO {items_table} (name) VALUES ('nope')")
    assert refused(result, "permission denied for table items"), result.stderr


def test_backup_authenticates_by_certificate_and_reads_everything(items_table):
    result = CLIENT.run(f"psql 'service=appdb_backup' -XAtc 'SELECT count(*) FROM {items_table}'")
    assert result.rc == 0, result.stderr
    refused_write = CLIENT.run(f"psql 'service=appdb_backup' -XAtc \"DELETE FROM {items_table}\"")
    assert refused(refused_write, "permission denied"), refused_write.stderr


@pytest.fixture
def app_certificate_on_client():
    """The application's client certificate (CN app_rw), copied from the controller."""
    pki = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki" / "clients"
    for name in ("app.crt", "app.key"):
        subprocess.run(["podman", "cp", str(pki / name), f"pg-client:/tmp/{name}"], check=True)
    CLIENT.run("chmod 0600 /tmp/app.key")
    return "/tmp/app.crt", "/tmp/app.key"


def test_a_client_certificate_with_another_cn_is_refused(app_certificate_on_client):
    cert, key = app_certificate_on_client
    result = psql(f"service=appdb_backup sslcert={cert} sslkey={key}", "SELECT 1")
    assert refused(result, 'certificate authentication failed for user "backup"'), result.stderr


def test_passwords_never_reach_the_server_log(items_table):
    log = SERVER.run("cat /var/log/postgresql/postgresql-15-main.log").stdout
    # log_statement=all saw the role statements: they carried verifiers only.
    assert "PASSWORD 'SCRAM-SHA-256$4096:" in log
    for password in PASSWORDS.values():
        assert password not in log


# --- the role itself ----------------------------------------------------------

def test_check_mode_on_the_converged_hosts_changes_nothing(run_playbook):
    result = run_playbook("converge.yml", "--check", "--diff")
    assert result.returncode == 0, result.stdout
    recap = result.stdout[result.stdout.index("PLAY RECAP"):]
    assert recap.count("changed=0") == 2, recap


def hba_checksum() -> str:
    return SERVER.file("/etc/postgresql/15/main/pg_hba.conf").sha256sum


def test_a_broken_hba_rule_never_takes_effect(run_playbook):
    before = hba_checksum()
    bad = {
        "postgresql_server_client_networks": ["10.0.0.300/32"],
        "postgresql_server_hba_rules": [{"databases": ["appdb"], "users": ["app_rw"]}],
    }
    result = run_playbook("converge.yml", "--limit", "pg-server", extra_vars=bad)
    assert result.returncode != 0
    assert "pg_hba.conf rendered from postgresql_server_hba_rules has errors" in result.stdout
    assert "10.0.0.300" in result.stdout
    assert hba_checksum() == before
    assert as_user("app_rw", "SELECT 1").rc == 0


def test_a_bad_setting_is_refused_before_it_is_installed(run_playbook):
    conf = "/etc/postgresql/15/main/postgresql.conf"
    before = SERVER.file(conf).sha256sum
    result = run_playbook("converge.yml", "--limit", "pg-server",
                          extra_vars={"postgresql_server_settings": {"work_mem": "lots"}})
    assert result.returncode != 0
    assert 'invalid value for parameter "work_mem"' in result.stdout
    assert SERVER.file(conf).sha256sum == before
