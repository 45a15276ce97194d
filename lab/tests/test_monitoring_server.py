"""roles/monitoring_server on the lab: Prometheus scrapes every exporter and
has pgharbor's rules; a configuration amtool refuses never replaces the
running one; real faults reach the lab's receiver and resolve when they are
healed, both measured (alerting.py; the faults whose rules wait longer are in
test_alerts_slow.py)."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from alerting import (
    ALERTMANAGER,
    BACKUP1,
    DB1,
    LEGACY,
    MON1,
    PROMETHEUS,
    RECEIVED,
    Fault,
    api,
    break_and_heal,
    run,
    wait_for,
)
from ansiblerun import playbook_runner
from labhosts import INVENTORY, REPO, lab_host

DB2 = lab_host("db2")

RULES = REPO / "roles" / "monitoring_server" / "files" / "pgharbor.rules.yml"
PLAYBOOK = Path(__file__).parent / "playbooks" / "monitoring_server.yml"


def reports(since: float) -> list[dict]:
    """The daily report's documents the receiver got after `since`."""
    out = MON1.run(f"cat {RECEIVED}")
    entries = [json.loads(line) for line in out.stdout.splitlines()] if out.rc == 0 else []
    return [entry["notification"] for entry in entries
            if entry["received"] >= since and entry["notification"].get("kind") == "pgharbor-daily-report"]


def test_every_target_is_up():
    def all_up():
        targets = api(f"{PROMETHEUS}/api/v1/targets")["data"]["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None
    targets = wait_for("target list with every target up", all_up, 90)
    seen = {(t["labels"]["job"], t["labels"]["instance"]) for t in targets}
    # the DB servers (a cluster: Patroni's API too), the etcd members, the other monitored hosts, mon1 itself
    assert seen == ({(job, db) for db in ("db1", "db2") for job in ("node", "postgres", "mtail", "patroni")}
                    | {("etcd", member) for member in ("db1", "db2", "mon1")}
                    | {("node", "backup1"), ("node", "legacy"), ("prometheus", "mon1"), ("alertmanager", "mon1")})


def test_prometheus_has_every_rule_of_the_repository():
    loaded = {rule["name"] for group in api(f"{PROMETHEUS}/api/v1/rules")["data"]["groups"]
              for rule in group["rules"]}
    expected = {rule.get("alert") or rule.get("record")
                for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert expected <= loaded
    assert "pgharbor:threshold:disk_full_hours" in loaded
    # the thresholds are the inventory's values (the role's defaults in the lab)
    value = api(f"{PROMETHEUS}/api/v1/query?query=pgharbor:threshold:disk_full_hours")["data"]["result"]
    assert float(value[0]["value"][1]) == 24


def test_the_daily_report_is_written_and_its_summary_reaches_the_receiver():
    assert MON1.service("pgharbor-report.timer").is_enabled
    since = time.time()
    run(MON1, "systemctl start pgharbor-report.service")
    (document,) = reports(since)
    # The lab's own day: its link, its tiers and its drills, as Prometheus has them.
    assert "link legacy buffer_remote: connect p95 peak" in document["text"], document["text"]
    assert "RPO logical tier1 db1:" in document["text"] and "RPO time travel tier3 db1:" in document["text"]
    # lab.yml's restore drill of the newest backup
    assert "drill logical tier1 db1: passed" in document["text"]
    page = MON1.file(f"/var/lib/pgharbor-report/{document['page']}")
    assert page.user == "pgharbor-report" and page.mode == 0o644
    assert MON1.file("/var/lib/pgharbor-report/latest.html").content_string == page.content_string
    assert "<svg" in page.content_string


def test_a_configuration_amtool_refuses_leaves_the_running_one():
    before = MON1.file("/etc/prometheus/alertmanager.yml").sha256sum
    run = playbook_runner(REPO, INVENTORY)(PLAYBOOK, extra_vars={
        "monitoring_server_routes": [{"matchers": ['severity="critical"'], "receiver": "nobody"}]})
    assert run.returncode != 0
    assert 'undefined receiver "nobody"' in run.stdout, run.stdout[-3000:]
    assert MON1.file("/etc/prometheus/alertmanager.yml").sha256sum == before
    assert api(f"{ALERTMANAGER}/api/v2/status")["config"]["original"].count("nobody") == 0


def damaged_arrival() -> Fault:
    """A copy of db1's newest backup arrives on backup1 with one byte changed: the intake quarantines
    it, the gauges count it; the operator removes it once looked at."""
    root = json.loads(BACKUP1.file("/etc/pgharbor/backup-server.json").content_string)["root"]
    store, incoming, quarantine = (f"{root}/{d}/db1" for d in ("store", "incoming", "quarantine"))
    manifest = [name for name in sorted(BACKUP1.run(f"ls {store}").stdout.split())
                if name.endswith(".manifest.json")][-1]
    artefact = json.loads(BACKUP1.file(f"{store}/{manifest}").content_string)["artefact"]
    # As the shipping login leaves them: the artefact first, one byte flipped, then its manifest.
    ship = "install -o pgharbor-ship -g pgharbor -m 0640"
    return Fault(
        "a damaged arrival on backup1", "BackupQuarantined", "backup1",
        lambda: run(BACKUP1, f"{ship} {store}/{artefact} {incoming}/{artefact} && printf X | dd "
                             f"of={incoming}/{artefact} bs=1 seek=100 conv=notrunc status=none && "
                             f"{ship} {store}/{manifest} {incoming}/{manifest}"),
        lambda: run(BACKUP1, f"rm -f {quarantine}/{artefact} {quarantine}/{manifest}"),
        {"severity": "warning", "host": "db1"})


def backup_timer_stopped() -> Fault:
    """db1's logical backup timer stopped until its newest backup is older than the RPO. The lab's RPO
    is the role's 2 hours, so the test lowers it, in the settings `pgharbor-backup status` reads (the
    key pg_backup_max_age_hours renders), to the newest backup's age plus one minute: the RPO is
    passed a minute after the timer stopped instead of hours. The fix is the operator's: the timer
    started again and a backup taken now; the settings are put back as they were."""
    settings = "/etc/pgharbor/backup.json"

    def breaking() -> float:
        run(DB1, "systemctl stop pgharbor-backup.timer")
        run(DB1, f"cp -p {settings} {settings}.lab-test")
        asked = time.time()
        status = json.loads(DB1.run("runuser -u postgres -- pgharbor-backup status --json").stdout)
        rpo = status["newest_age_seconds"] + 60
        # to_nice_json writes the key on a line of its own
        limit = f'"max_age_hours": {rpo / 3600:.6f}'
        run(DB1, f"sed -i 's/\"max_age_hours\": [0-9.e+-]*/{limit}/' {settings} && grep -qF '{limit}' {settings}")
        return asked + 60

    def healing() -> None:
        try:
            run(DB1, "systemctl start pgharbor-backup.timer")
            # PostgreSQL may be stopped by the fault beside this one: the backup waits for it.
            run(DB1, "timeout 300 sh -c 'until pg_isready -q; do sleep 2; done'")
            run(DB1, "systemctl start pgharbor-backup.service")
        finally:
            run(DB1, f"mv -f {settings}.lab-test {settings}")

    # The gauges are written every minute, and the rule waits 5 minutes.
    return Fault("db1's backup timer stopped past the RPO", "BackupTierUnhealthy", "db1", breaking, healing,
                 {"severity": "warning", "host": "db1", "tier": "tier1"}, within=600)


def failed_logins() -> Fault:
    """25 logins refused on db1 in a row (wrong secrets, or no pg_hba.conf entry for the address):
    someone guessing. Nothing to heal; the alert ends once the burst is out of its 5-minute window."""
    attempt = ("psql 'host=127.0.0.1 dbname=buffer user=app_rw password=wrong-on-purpose sslmode=require "
               "connect_timeout=5' -c '' 2>&1 | grep -q -e 'password authentication failed' "
               "-e 'no pg_hba.conf entry' -e 'pg_hba.conf rejects'")
    return Fault("25 logins refused on db1", "FailedLoginsBurst", "db1",
                 lambda: run(DB1, f"for i in $(seq 25); do {attempt} || exit 1; done"), lambda: None,
                 {"severity": "warning"}, within=180)


def stopped(host, service: str, fault: str, alertname: str, instance: str, labels: dict) -> Fault:
    return Fault(fault, alertname, instance, lambda: run(host, f"systemctl stop {service}"),
                 lambda: run(host, f"systemctl start {service}"), labels)


def test_real_faults_reach_the_receiver_and_resolve(measured):
    """Each fault broken in the lab, its alert measured at the receiver, healed, its resolution
    measured. Faults that cannot mask each other run side by side (a cut link and a damaged arrival;
    PostgreSQL and a node_exporter stopped; the slow link and postgres_exporter stopped): a stopped
    server or a cut link would hide the slow link. The slowest (the backup timer's, whose rule waits 5
    minutes, and the refused logins, whose alert ends 5 minutes after them) run beside all of them."""
    phases = [
        [Fault("the application's link cut (legacy to db1 and db2)", "LinkDown", "legacy",
               # inside legacy's own network namespace: its packets to either member go nowhere
               lambda: run(LEGACY, "ip route add blackhole 10.89.42.11/32; ip route add blackhole 10.89.42.15/32"),
               lambda: run(LEGACY, "ip route del blackhole 10.89.42.11/32; ip route del blackhole 10.89.42.15/32"),
               {"severity": "critical", "service": "buffer_remote"}),
         damaged_arrival()],
        # the standby's: Patroni would restart the primary's PostgreSQL within a loop, or fail over
        [stopped(DB2, "patroni@15-main", "PostgreSQL stopped on db2 (its Patroni stopped)", "PostgreSQLDown", "db2",
                 {"severity": "critical"}),
         stopped(BACKUP1, "prometheus-node-exporter", "node_exporter stopped on backup1", "HostDown", "backup1",
                 {"severity": "critical", "job": "node"})],
        # The lab's kernel has no netem: a token bucket shapes legacy's side of the link to 16 kbit/s,
        # which the application sees as latency (each packet waits for its tokens).
        [Fault("the application's link slowed (legacy, 16 kbit/s)", "LinkSlow", "legacy",
               lambda: run(LEGACY, "tc qdisc add dev eth0 root tbf rate 16kbit burst 1600 latency 5s"),
               lambda: run(LEGACY, "tc qdisc del dev eth0 root"), {"severity": "warning"}),
         stopped(DB1, "prometheus-postgres-exporter", "postgres_exporter stopped on db1", "ExporterDown", "db1",
                 {"severity": "warning", "job": "postgres"})],
    ]
    slow = [backup_timer_stopped(), failed_logins()]
    with ThreadPoolExecutor(len(slow)) as beside:
        slow_times = beside.map(break_and_heal, slow)
        for phase in phases:
            with ThreadPoolExecutor(len(phase)) as pool:
                for times in pool.map(break_and_heal, phase):
                    measured += times
        for times in slow_times:
            measured += times


KEYWORDS = {"and", "or", "unless", "on", "ignoring", "group_left", "group_right", "by", "without", "bool",
            "offset", "inf", "nan"}


def metrics_of(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label matchers, label
    lists, ranges, functions and keywords are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(on|ignoring|by|without|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = {m.group() for m in re.finditer(r"(?<![\w:.])[A-Za-z_:][A-Za-z0-9_:]*", expr)
             if not expr[m.end():].lstrip().startswith("(")}
    return {n for n in names if n.lower() not in KEYWORDS}


def test_every_metric_a_rule_reads_is_emitted():
    """Rules often read a metric their exporter does not emit, and then never fire: each metric the
    rules read must be in this lab's live scrape (the pinned exporters and pgharbor's own gauges)."""
    def emitted():
        names = set(api(f"{PROMETHEUS}/api/v1/label/__name__/values")["data"])
        return names if {"pgharbor_backup_count", "pgharbor_timetravel_tier_healthy"} <= names else None
    names = wait_for("pgharbor's gauges in Prometheus", emitted, 180, every=5)
    read = {name for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
            if "alert" in rule for name in metrics_of(rule["expr"])}
    assert "pg_up" in read and "pgharbor_backup_quarantined" in read  # the parser finds what is there
    missing = sorted(read - names)
    assert not missing, f"the rules read metrics nothing emits: {missing}"
