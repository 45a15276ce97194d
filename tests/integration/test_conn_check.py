"""pg_conn_check's logic against real PostgreSQL 15 servers with TLS on
loopback: what a sound link reports, and each way a link goes wrong (an
unverified or unencrypted link, the wrong CA, password or port, a
certificate about to expire, a threshold crossed, a restart the client
survives or does not)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from ansiblerun import run_module
from certs import make_ca, write_cert
from migrationdb import tls_settings
from pgserver import free_port, start_server
from retrysnippet import documented_snippet

from pgharbor.link.check import WATCH_APPLICATION_NAME, CheckSettings, Thresholds, check_connection
from pgharbor.link.retry import RetryPolicy

APP_PASSWORD = "app-Secret-1"
FAST = CheckSettings(attempts=5, queries=20, throughput_mb=4)


@contextmanager
def server_with_tls():
    """A TLS server (certificate for 127.0.0.1) with a login role app."""
    directory = Path(tempfile.mkdtemp(prefix="pgharbor-tls-"))
    settings, ca_file = tls_settings(directory)
    server = start_server(settings)
    try:
        with server.connect(autocommit=True) as conn:
            conn.execute(f"CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'")
        yield server, ca_file, directory
    finally:
        server.remove()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def tls_server():
    with server_with_tls() as found:
        yield found


def app(server, ca_file: str, sslmode: str = "verify-full", password: str = APP_PASSWORD) -> str:
    return server.conninfo(user="app", password=password) + f" sslmode={sslmode} sslrootcert={ca_file}"


def test_a_sound_link_reports_its_facts_and_passes(tls_server):
    server, ca_file, _ = tls_server
    report = check_connection(app(server, ca_file), FAST)
    assert report.passed, report.problems
    assert report.target == f"app@127.0.0.1:{server.port}/postgres"
    assert report.server == {"host": "127.0.0.1", "port": server.port, "role": "primary"}
    assert report.connect_ms["count"] == 5 and report.connect_ms["failures"] == 0
    assert 0 < report.connect_ms["p50"] <= report.connect_ms["p95"] <= report.connect_ms["p99"]
    assert report.tcp_connect_ms["count"] == 5 and report.tcp_connect_ms["p50"] < report.connect_ms["p50"]
    assert report.query_ms["count"] == 20
    tls = report.tls
    assert tls["in_use"] and tls["protocol"] == "TLSv1.3" and tls["sslmode"] == "verify-full"
    cert = tls["certificate"]
    assert cert["verify_full"] and cert["subject"] == "CN=127.0.0.1" and cert["issuer"] == "CN=migration test CA"
    assert 88 <= cert["days_left"] <= 90
    assert report.authentication == {"method": "password", "user": "app", "client_certificate": None}
    assert report.throughput["volume_mb"] >= 4 and report.throughput["upload_mb_s"] > 0 \
        and report.throughput["download_mb_s"] > 0
    summary = "\n".join(report.summary())
    assert "PASS" in summary and "verify-full passes" in summary and APP_PASSWORD not in summary
    assert f"answered by 127.0.0.1:{server.port}, the primary" in summary


def test_sslmode_require_is_a_problem_and_the_report_says_verify_full_would_pass(tls_server):
    server, ca_file, _ = tls_server
    report = check_connection(app(server, ca_file, sslmode="require"), FAST)
    assert report.tls["certificate"]["verify_full"]
    assert report.problems == ["sslmode=require does not check the server's certificate: set sslmode=verify-full "
                               "in the client's service (pg_client_services)"]
    relaxed = check_connection(app(server, ca_file, sslmode="require"), FAST, Thresholds(require_verify_full=False))
    assert relaxed.passed, relaxed.problems


def test_a_ca_that_did_not_sign_the_server_certificate_is_refused(tls_server):
    server, _, directory = tls_server
    stranger = write_cert(directory / "stranger-ca.crt", make_ca("stranger CA")[0])
    report = check_connection(app(server, stranger), FAST)
    assert not report.reachable and not report.passed
    [problem] = report.problems
    assert "certificate verify failed" in problem and "not signed by sslrootcert" in problem


def test_an_unverifiable_certificate_is_reported_with_its_subject(tls_server):
    """sslmode=require without a CA file connects, encrypted but blind; the
    report's own handshake says why verify-full would fail."""
    server, _, directory = tls_server
    missing = str(directory / "no-such-ca.crt")
    report = check_connection(app(server, missing, sslmode="require"), FAST)
    cert = report.tls["certificate"]
    assert not cert["verify_full"] and "no CA file" in cert["verify_error"]
    assert cert["subject"] == "CN=127.0.0.1"
    assert any(p.startswith("verify-full fails: no CA file") for p in report.problems)


def test_a_wrong_password_names_the_cause(tls_server):
    server, ca_file, _ = tls_server
    report = check_connection(app(server, ca_file, password="wrong"), FAST)
    assert not report.reachable
    assert "password authentication failed" in report.problems[0] and "vault" in report.problems[0]
    assert "wrong" not in report.target


def test_nothing_listening_names_the_cause():
    report = check_connection(f"host=127.0.0.1 port={free_port()} user=app dbname=postgres connect_timeout=2", FAST)
    assert not report.reachable and "Connection refused" in report.problems[0] \
        and "postgresql_server_listen_addresses" in report.problems[0]


def test_a_certificate_near_its_end_and_crossed_thresholds_name_the_threshold(tls_server):
    server, ca_file, _ = tls_server
    strict = Thresholds(connect_p95_ms=0.001, query_p95_ms=0.0001, min_upload_mb_s=1e9, min_download_mb_s=1e9,
                        min_cert_days=1000)
    report = check_connection(app(server, ca_file), FAST, strict)
    named = " ".join(report.problems)
    for threshold in ("connect_p95_ms (0.001)", "query_p95_ms (0.0001)", "min_upload_mb_s", "min_download_mb_s",
                      "min_cert_days (1000)"):
        assert threshold in named, report.problems
    assert len(report.problems) == 5


def test_an_unencrypted_link_is_a_problem():
    server = start_server()
    try:
        with server.connect(autocommit=True) as conn:
            conn.execute(f"CREATE ROLE app LOGIN PASSWORD '{APP_PASSWORD}'")
        report = check_connection(server.conninfo(user="app", password=APP_PASSWORD) + " sslmode=prefer", FAST)
        assert report.reachable and report.tls == {"in_use": False, "sslmode": "prefer",
                                                   "detail": "not encrypted (sslmode=prefer)"}
        assert report.problems[0].startswith("the connection is not encrypted (sslmode=prefer)")
    finally:
        server.remove()


def restart_while_checking(server, conninfo: str, settings: CheckSettings, down_seconds: float):
    """check_connection in a thread; once its restart watch is connected the
    server stops and, down_seconds later, starts again."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(report=check_connection(conninfo, settings)))
    thread.start()
    deadline = time.monotonic() + 60
    while True:
        with server.connect(autocommit=True) as conn:
            if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            [WATCH_APPLICATION_NAME]).fetchone()[0]:
                break
        assert time.monotonic() < deadline, "the restart watch never connected"
        time.sleep(0.1)
    server.stop()
    time.sleep(down_seconds)
    server.start()
    thread.join(120)
    return result["report"]


@pytest.fixture
def restartable():
    with server_with_tls() as (server, ca_file, _):
        yield server, app(server, ca_file)


def test_the_client_gets_the_database_back_after_a_restart(restartable):
    server, conninfo = restartable
    settings = CheckSettings(attempts=2, queries=2, throughput_mb=0, restart_test=True, restart_window_seconds=60,
                             retry=RetryPolicy(base_seconds=0.2, cap_seconds=1, deadline_seconds=30))
    report = restart_while_checking(server, conninfo, settings, down_seconds=1)
    restart = report.restart
    assert report.passed, report.problems
    assert restart["observed"] and restart["reconnected"] and restart["restarted"]
    assert 1 <= restart["outage_seconds"] < 30 and restart["attempts"] >= 2


def test_a_server_away_longer_than_the_policy_allows_fails(restartable):
    server, conninfo = restartable
    settings = CheckSettings(attempts=2, queries=2, throughput_mb=0, restart_test=True, restart_window_seconds=60,
                             retry=RetryPolicy(base_seconds=0.2, cap_seconds=0.5, deadline_seconds=2))
    report = restart_while_checking(server, conninfo, settings, down_seconds=6)
    assert report.restart["observed"] and not report.restart["reconnected"]
    [problem] = report.problems
    assert problem.startswith("restart_test: lost the server and gave up after") and "deadline 2 s" in problem


def test_a_restart_test_without_a_restart_fails(restartable):
    _, conninfo = restartable
    settings = CheckSettings(attempts=2, queries=2, throughput_mb=0, restart_test=True, restart_window_seconds=1)
    report = check_connection(conninfo, settings)
    assert report.problems == ["restart_test: no restart within 1 s: restart the server while the check runs "
                               "(check_connection.yml with check_connection_restart_test does)"]


def test_the_check_writes_nothing_and_needs_no_privilege_beyond_connect(tls_server):
    server, ca_file, _ = tls_server
    with server.connect(autocommit=True) as conn:
        conn.execute("REVOKE TEMPORARY ON DATABASE postgres FROM PUBLIC")
        try:
            report = check_connection(app(server, ca_file), FAST)
        finally:
            conn.execute("GRANT TEMPORARY ON DATABASE postgres TO PUBLIC")
        assert report.passed and report.throughput["upload_mb_s"] > 0, report.problems
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relpersistence = 't'").fetchone()[0] == 0
    with pytest.raises(psycopg.Error):
        psycopg.connect(app(server, ca_file, password="wrong"))


def test_a_certificate_for_another_name_fails_verify_full(tls_server):
    """The client reaches the right address under a name the certificate
    does not carry: encrypted, but verify-full would refuse it."""
    server, ca_file, _ = tls_server
    conninfo = (f"host=db.invalid hostaddr=127.0.0.1 port={server.port} dbname=postgres user=app "
                f"password={APP_PASSWORD} sslmode=verify-ca sslrootcert={ca_file}")
    report = check_connection(conninfo, FAST)
    cert = report.tls["certificate"]
    assert report.reachable and not cert["verify_full"] and "db.invalid" in cert["verify_error"]
    assert cert["subject"] == "CN=127.0.0.1"
    assert report.problems[0].startswith("verify-full fails: Hostname mismatch")
    assert report.problems[1].startswith("sslmode=verify-ca does not check the server's name")


def test_the_module_through_ansible_fails_naming_the_threshold_and_hides_the_password(repo, tls_server, tmp_path):
    server, ca_file, _ = tls_server
    target = f"host=127.0.0.1 port={server.port} dbname=postgres user=app sslmode=verify-full sslrootcert={ca_file}"
    args = {"target": target, "target_password": APP_PASSWORD, "attempts": 3, "queries": 5, "throughput_mb": 1}
    rc, out, log = run_module(repo, tmp_path, "pg_conn_check", args, check=True)
    assert rc == 0 and out["passed"] and not out["changed"], log
    assert out["summary"][0] == f"app@127.0.0.1:{server.port}/postgres: PASS"
    rc, out, log = run_module(repo, tmp_path, "pg_conn_check", {**args, "thresholds": {"query_p95_ms": 0.0001}})
    assert rc != 0 and "threshold query_p95_ms (0.0001)" in out["msg"], log
    rc, out, log = run_module(repo, tmp_path, "pg_conn_check", {**args, "retry": {"base_seconds": 0}})
    assert rc != 0 and "base_seconds" in out["msg"], log
    assert APP_PASSWORD not in log


def test_the_documented_retry_snippet_survives_a_restart_and_gives_up_at_its_deadline(repo, restartable):
    server, conninfo = restartable
    snippet = documented_snippet(repo)
    server.stop()
    restart = threading.Timer(1.5, server.start)
    restart.start()
    started = time.monotonic()
    with snippet["connect_with_retry"](conninfo, base=0.2, cap=1, deadline=30) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert 1.5 <= time.monotonic() - started < 30
    restart.join()  # pg_ctl start may still be waiting for the server it started

    calls = []

    def transaction(conn):
        calls.append(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        if len(calls) == 1:  # the server ends this session mid-transaction, as a restart would
            with server.connect(autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", [calls[0]])
            conn.execute("SELECT 1")
        return "done"

    assert snippet["run_with_retry"](conninfo, transaction) == "done" and len(calls) == 2

    server.stop()
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        snippet["connect_with_retry"](conninfo, base=0.2, cap=0.5, deadline=2)
    assert time.monotonic() - started <= 2 + 5  # the deadline, plus at most one connect_timeout


def test_the_link_gauges_command_checks_the_service_and_writes_its_gauges(tls_server, tmp_path, monkeypatch):
    """pgharbor-link-check, as the exporters role's timer runs it on an application host: the
    application's service, the inventory's thresholds, the gauges for node_exporter."""
    from pgharbor.cli import pgharbor_link_check

    server, ca_file, _ = tls_server
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[app]\nhost=127.0.0.1\nport={server.port}\ndbname=postgres\nuser=app\n"
                        f"password={APP_PASSWORD}\nsslmode=verify-full\nsslrootcert={ca_file}\n"
                        "[nowhere]\nhost=127.0.0.1\nport=1\ndbname=postgres\nuser=app\nconnect_timeout=2\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    gauges = tmp_path / "pgharbor_link.prom"
    limits = '{"connect_p95_ms": 250, "query_p95_ms": 20, "min_upload_mb_s": 5, "min_cert_days": 30}'
    assert pgharbor_link_check.main(["--service", "app", "--thresholds", limits, "--prometheus", str(gauges)]) == 0
    text = gauges.read_text()
    for line in ('pgharbor_link_up{service="app"} 1', 'pgharbor_link_verify_full{service="app"} 1',
                 'pgharbor_link_query_p95_limit_seconds{service="app"} 0.02',
                 'pgharbor_link_certificate_min_days{service="app"} 30',
                 'pgharbor_link_authentication_info{service="app",method="password",user="app"} 1',
                 'pgharbor_link_server_info{service="app",server="127.0.0.1",role="primary"} 1'):
        assert f"\n{line}\n" in text, line
    assert 'pgharbor_link_tls_info{service="app",version="TLSv1.3",' in text
    assert 'pgharbor_link_query_seconds{service="app",quantile="0.95"}' in text
    assert APP_PASSWORD not in text
    # Nothing listens: the check fails, the gauges say so and name the cause.
    assert pgharbor_link_check.main(["--service", "nowhere", "--prometheus", str(gauges)]) == 1
    text = gauges.read_text()
    assert 'pgharbor_link_up{service="nowhere"} 0\n' in text
    assert 'pgharbor_link_failure{service="nowhere",cause="refused"} 1\n' in text
    # A threshold the check does not know is refused by name.
    assert pgharbor_link_check.main(["--service", "app", "--thresholds", '{"query_p99_ms": 5}']) == 2
