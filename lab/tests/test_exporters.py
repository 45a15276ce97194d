"""roles/exporters on the lab: every exporter answers the monitoring host on
its host's address, and nobody else reaches the firewalled ones; the DB
server's postgres_exporter logs in as the monitor role and carries the
pinned queries' metrics; its mtail counts every login PostgreSQL refused."""

from __future__ import annotations

import re
import time

import pytest
from alerting import wait_for
from labhosts import lab_host

MON1, LEGACY, BACKUP1 = lab_host("mon1"), lab_host("legacy"), lab_host("backup1")
ADDRESSES = {"db1": "10.89.42.11", "backup1": "10.89.42.12", "legacy": "10.89.42.10"}
FETCH = ("python3 -c 'import sys, urllib.request; "
         "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' {}")


def scrape(url: str) -> str:
    out = MON1.run(FETCH.format(url))
    assert out.rc == 0, f"{url} from mon1: {out.stderr}"
    return out.stdout


@pytest.mark.parametrize("host", sorted(ADDRESSES))
def test_node_exporter_answers_the_monitoring_host(host):
    metrics = scrape(f"http://{ADDRESSES[host]}:9100/metrics")
    assert "node_filesystem_avail_bytes" in metrics
    # the textfile collector reads pgharbor's directory (and found it readable)
    assert 'node_textfile_scrape_error 0' in metrics


def test_postgres_exporter_logs_in_and_carries_the_pinned_queries():
    # The first scrape after PostgreSQL restarted (the lab's faults and the
    # link check's restart test do that) may meet the exporter's session
    # from before and answer pg_up 0; it logs in again for the next one.
    def logged_in() -> str | None:
        metrics = scrape("http://10.89.42.11:9187/metrics")
        return metrics if "\npg_up 1\n" in metrics else None

    metrics = wait_for("scrape with pg_up 1 from db1's postgres_exporter", logged_in, timeout=60, every=5)
    for name in ("pg_archiver_archived_count", "pg_archiver_last_archived_timestamp_seconds",
                 "pg_connections_used", "pg_connections_max"):
        assert f"\n{name} " in metrics or f"\n{name}{{" in metrics, name
    # the exporter's own session comes through the local socket (the exporter adds a server label)
    assert re.search(r'^pg_connections_tls_count\{.*transport="local",user="monitor"\} [1-9]', metrics, re.M)


def refused_logins() -> dict[str, float]:
    metrics = scrape("http://10.89.42.11:3903/metrics")
    return {name: float(value) for name, value in
            re.findall(r"^(pgharbor_postgresql_\w+_total) (\S+)$", metrics, re.M)}


def test_mtail_counts_the_logins_postgresql_refused():
    before = refused_logins()
    assert set(before) == {"pgharbor_postgresql_auth_failed_total", "pgharbor_postgresql_rejected_total"}
    db1 = lab_host("db1")
    for _ in range(3):  # plain TCP: the first hba line that matches says reject
        out = db1.run("psql 'host=127.0.0.1 dbname=postgres user=nobody sslmode=disable' -XAtc 'SELECT 1'")
        assert out.rc != 0 and "pg_hba.conf rejects connection" in out.stderr, out.stderr
    for _ in range(2):  # the application's own service, a real user, the wrong password
        out = LEGACY.run("runuser -u buffer_app -- psql 'service=buffer_remote user=monitor password=wrong' "
                         "-XAtc 'SELECT 1'")
        assert out.rc != 0 and "password authentication failed" in out.stderr, out.stderr
    expected = {"pgharbor_postgresql_auth_failed_total": before["pgharbor_postgresql_auth_failed_total"] + 2,
                "pgharbor_postgresql_rejected_total": before["pgharbor_postgresql_rejected_total"] + 3}
    deadline = time.monotonic() + 15
    while (now := refused_logins()) != expected and time.monotonic() < deadline:
        time.sleep(1)
    assert now == expected


@pytest.mark.parametrize("port", [9100, 9187, 3903])
@pytest.mark.parametrize("client", [LEGACY, BACKUP1], ids=["legacy", "backup1"])
def test_the_db_servers_exporters_are_closed_to_other_hosts(client, port):
    # The firewall drops (no answer at all), so netcat times out.
    assert client.run(f"nc -z -w 3 10.89.42.11 {port}").rc != 0
    # ... while the monitoring host gets through on the same port.
    assert MON1.run(f"nc -z -w 3 10.89.42.11 {port}").rc == 0


def test_exporters_listen_on_their_address_only():
    listening = lab_host("db1").run("ss -Hltn").stdout
    for port in (9100, 9187, 3903):
        assert f"10.89.42.11:{port} " in listening
        assert f"*:{port} " not in listening and f"0.0.0.0:{port} " not in listening


TEXTFILE = "/var/lib/prometheus/node-exporter"


@pytest.mark.parametrize(("host", "name", "metric"), [
    ("db1", "backup", 'pgharbor_backup_tier_healthy{host="db1",tier="tier1"}'),
    ("db1", "timetravel", 'pgharbor_timetravel_tier_healthy{host="db1",tier="tier3"}'),
    ("backup1", "backup_server", 'pgharbor_backup_quarantined{host="db1",tier="tier2"}'),
    # listed with the backup server's reader key, which the lab's S3 stand-in holds to its policy: healthy
    ("backup1", "backup_server_tier3", 'pgharbor_backup_tier_healthy{host="db1",tier="tier3"} 1\n'),
    ("db1", "firewall", 'pgharbor_firewall_packets_total{counter="dropped"}'),
    ("backup1", "firewall", 'pgharbor_firewall_packets_total{counter="dropped"}'),
])
def test_pgharbor_gauges_are_written_by_their_timer_and_published(host, name, metric):
    target = lab_host(host)
    gauges = target.file(f"{TEXTFILE}/pgharbor_{name}.prom")
    assert target.service(f"pgharbor-gauges-{name}.timer").is_running
    deadline = time.monotonic() + 90
    while not gauges.exists and time.monotonic() < deadline:
        time.sleep(2)
    assert gauges.exists, f"pgharbor-gauges-{name} wrote nothing: journalctl -u pgharbor-gauges-{name}"
    assert gauges.group == "pgharbor-gauges" and gauges.mode == 0o644
    published = scrape(f"http://{ADDRESSES[host]}:9100/metrics")
    assert metric in published
    assert f'node_textfile_mtime_seconds{{file="{TEXTFILE}/pgharbor_{name}.prom"}}' in published
    assert "node_textfile_scrape_error 0" in published


@pytest.mark.parametrize("user", ["postgres", "nobody"])
def test_only_the_gauges_units_write_the_textfile_directory(user):
    # postgres writes there only inside its gauges units (SupplementaryGroups), never as itself.
    out = lab_host("db1").run(f"runuser -u {user} -- touch {TEXTFILE}/forged.prom")
    assert out.rc != 0 and "Permission denied" in out.stderr
