"""High availability in the lab, as issue 21 tells its stories: db1 and db2
under Patroni, etcd on db1, db2 and mon1. A writer on the application host
(legacy) commits one row after another through the application's own
service (host=db1,db2, target_session_attrs=read-write) and the retry code
docs/CONNECTIONS.md gives applications, and reports each acknowledged commit;
after each story every acknowledged row must be on the primary.

The stories run in order, each from the state the one before left:
a planned switchover (db1 to db2), the primary killed (db2: Patroni and
PostgreSQL kill -9), the primary cut off from etcd and the standby by its
own firewall (db1), one etcd member lost and then two, the standby rebuilt,
and a switchover back, so that the lab ends as make lab left it (db1 the
primary). The figures go to reports/ha-lab.json (lab/playbooks/summary.yml
shows them) and are printed; the limits the issue sets are asserted, the
figures themselves are never compared with a hard-coded value."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from datetime import datetime, timezone

import pytest
from alerting import wait_for
from ansiblerun import playbook_runner
from labhosts import CONTAINERS, INVENTORY, REPO, lab_host

HOSTS = {name: lab_host(name) for name in ("db1", "db2", "mon1", "legacy")}
ADDRESSES = {"db1": "10.89.42.11", "db2": "10.89.42.15", "mon1": "10.89.42.14"}
PATRONI = "/etc/patroni/15-main.yml"
REPORT = REPO / "reports" / "ha-lab.json"
# the lab's Patroni settings (inventories/lab/group_vars/db_servers.yml)
TTL = 20
STOP_FILE = "/tmp/pgharbor-ha-writer.stop"
# The cut-off primary's story and the two after it run with the slow suite (make lab-test-slow), not
# in make test, until the heal is reliable: in one CI run of 2026-12-08 the old primary, demoted
# while its shutdown waited for a walsender cut off from the standby, did not rejoin within 180 s
# (four runs on this machine before it rejoined in 10 to 22 s).
UNSETTLED = pytest.mark.slow


def sh(host: str, command: str) -> str:
    out = HOSTS[host].run(command)
    assert out.rc == 0, f"{host}: {command}: {out.stdout}{out.stderr}"
    return out.stdout.strip()


def members() -> dict[str, dict]:
    """patronictl's view (etcd's), from whichever DB server answers; none without an etcd majority."""
    for host in ("db1", "db2"):
        out = HOSTS[host].run(f"patronictl -c {PATRONI} list -f json")
        if out.rc == 0:
            return {m["Member"]: m for m in json.loads(out.stdout)}
    return {}


def leader() -> str | None:
    found = [name for name, m in members().items() if m["Role"] == "Leader" and m["State"] == "running"]
    return found[0] if found else None


def streaming(name: str) -> bool:
    m = members().get(name, {})
    return m.get("Role") in ("Replica", "Sync Standby") and m.get("State") in ("running", "streaming") \
        and m.get("Lag in MB") in (0, "0")


def ready() -> str:
    """Wait until the cluster is whole again: a leader, and its standby synchronous (the lab's
    synchronous_mode: only it may take over without losing a commit) and caught up. The leader's name."""
    def whole() -> str | None:
        found = members()
        lead = [n for n, m in found.items() if m["Role"] == "Leader" and m["State"] == "running"]
        sync = [n for n, m in found.items() if m["Role"] == "Sync Standby" and m.get("Lag in MB") in (0, "0")]
        return lead[0] if lead and sync else None
    return wait_for("a leader and its synchronous standby", whole, 180)


def other(name: str) -> str:
    return "db2" if name == "db1" else "db1"


def psql(host: str, statement: str, db: str = "buffer") -> str:
    return sh(host, f"runuser -u postgres -- psql -d {db} -XAtc \"{statement}\"")


def record(story: str, figures: dict, line: str) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    data = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    data.setdefault("stories", {})[story] = f"{line} ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)"
    data.setdefault("figures", {})[story] = figures
    REPORT.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{story}: {line}")


def writer_script() -> str:
    """The documented retry code, then a loop of single-row commits as the application's user."""
    text = (REPO / "docs" / "CONNECTIONS.md").read_text()
    snippet = text.split("<!-- retry-snippet -->\n```python\n", 1)[1].split("```", 1)[0]
    return snippet + f"""
import os, sys
n = 0
while not os.path.exists({STOP_FILE!r}):
    n += 1
    # ON CONFLICT: a COMMIT cut off has an unknown outcome, so the retry may find its row there
    run_with_retry("service=buffer_remote", lambda conn, n=n: conn.execute(
        "INSERT INTO buffer.ha_writes (id) VALUES (%s) ON CONFLICT DO NOTHING", [n]))
    print(n, time.time(), flush=True)
    time.sleep(0.05)
"""


class Writer:
    def __init__(self) -> None:
        sh("legacy", f"rm -f {STOP_FILE}")
        self.acked: list[tuple[int, float]] = []
        self.process = subprocess.Popen(
            ["podman", "exec", "-i", CONTAINERS["legacy"], "runuser", "-u", "buffer_app", "--", "python3", "-u", "-c",
             writer_script()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            n, at = line.split()
            self.acked.append((int(n), float(at)))

    def wait_for_acks(self, count: int, timeout: float = 120) -> None:
        start = len(self.acked)
        wait_for(f"{count} acknowledged commits", lambda: len(self.acked) >= start + count or self._died(), timeout,
                 every=0.2)
        assert not self._died(), f"the writer gave up: {self.process.stderr.read()}"

    def _died(self) -> bool:
        return self.process.poll() is not None

    def stop(self) -> set[int]:
        sh("legacy", f"touch {STOP_FILE}")
        self.process.wait(timeout=120)
        self.reader.join(timeout=10)
        assert self.process.returncode == 0, f"the writer gave up: {self.process.stderr.read()}"
        return {n for n, _ in self.acked}

    def longest_gap(self, since: float) -> float:
        times = [since] + [t for _, t in self.acked if t >= since]
        return max(b - a for a, b in zip(times, times[1:], strict=False))


@pytest.fixture(scope="module")
def cluster():
    """The table the writer fills, made on the primary; at the end dropped again, and db1 the primary."""
    first = ready()
    assert first == "db1", f"make lab leaves db1 the primary, not {first}"
    psql("db1", "CREATE TABLE IF NOT EXISTS buffer.ha_writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now()); "
                "ALTER TABLE buffer.ha_writes OWNER TO buffer_owner; "
                "GRANT SELECT, INSERT ON buffer.ha_writes TO app_rw")
    yield
    # the lab as make lab left it: db1 the primary, db2 its synchronous standby, no test table
    if ready() != "db1":
        switch_over("db1")
    psql(ready(), "DROP TABLE IF EXISTS buffer.ha_writes")


def rows_on(host: str) -> set[int]:
    return {int(x) for x in psql(host, "SELECT id FROM buffer.ha_writes").split()}


def lost(acked: set[int]) -> set[int]:
    return acked - rows_on(leader())


def switch_over(candidate: str) -> float:
    started = time.monotonic()
    done = playbook_runner(REPO, INVENTORY)(REPO / "playbooks" / "switchover.yml", "-e",
                                            f"postgresql_server_switchover_candidate={candidate}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert leader() == candidate
    return time.monotonic() - started


def test_a_planned_switchover_keeps_every_commit_and_the_writer_waits_at_most_5_s(cluster):
    writer = Writer()
    writer.wait_for_acks(20)
    started = time.time()
    seconds = switch_over("db2")
    writer.wait_for_acks(20)
    acked = writer.stop()
    gap = writer.longest_gap(started)
    missing = lost(acked)
    record("switchover", {"seconds": round(seconds, 1), "longest_write_gap_s": round(gap, 2),
                          "acknowledged": len(acked), "lost": len(missing)},
           f"switchover db1 to db2 in {seconds:.1f} s, the writer waited at most {gap:.1f} s, "
           f"{len(missing)} of {len(acked)} commits lost")
    assert not missing, f"acknowledged commits lost: {sorted(missing)[:10]}"
    assert gap <= 5, f"the writer could not write for {gap:.1f} s (at most 5 s)"
    wait_for("db1 streaming from db2", lambda: streaming("db1"), 120)


def test_the_primary_killed_its_standby_leads_within_30_s_losing_no_commit_and_it_rejoins(cluster):
    assert ready() == "db2"
    writer = Writer()
    writer.wait_for_acks(50)
    killed = time.time()
    # [b]: the pattern must not match the shell that runs it
    sh("db2", "pkill -KILL -f '[b]in/patroni' ; pkill -KILL -x postgres ; true")
    wait_for("db1 leading", lambda: leader() == "db1", 90)
    took_over = time.time() - killed
    writer.wait_for_acks(20)
    acked = writer.stop()
    gap = writer.longest_gap(killed)
    missing = lost(acked)
    sh("db2", "systemctl start patroni@15-main")
    restarted = time.monotonic()
    wait_for("db2 streaming again", lambda: streaming("db2"), 180)
    rejoined = time.monotonic() - restarted
    record("primary_killed", {"seconds_until_standby_leads": round(took_over, 1),
                              "longest_write_gap_s": round(gap, 1), "acknowledged": len(acked), "lost": len(missing),
                              "seconds_to_rejoin": round(rejoined, 1)},
           f"db2 killed: db1 led after {took_over:.1f} s, the writer waited at most {gap:.1f} s, {len(missing)} "
           f"of {len(acked)} commits lost (synchronous_mode), db2 streaming again {rejoined:.1f} s after its start")
    assert not missing, f"acknowledged commits lost: {sorted(missing)[:10]}"
    assert gap <= 30, f"the writer could not write for {gap:.1f} s (at most 30 s)"


CUT = ("nft add table inet lab_partition; "
       "nft add chain inet lab_partition in '{ type filter hook input priority -200; }'; "
       "nft add chain inet lab_partition out '{ type filter hook output priority -200; }'; "
       "nft add rule inet lab_partition in ip saddr '{ %(peers)s }' drop; "
       "nft add rule inet lab_partition out ip daddr '{ %(peers)s }' drop")


@UNSETTLED
def test_a_primary_cut_off_from_etcd_and_its_standby_stops_taking_writes_within_the_ttl(cluster):
    old = ready()
    new = other(old)
    peers = ", ".join(address for name, address in ADDRESSES.items() if name != old)
    writer = Writer()
    writer.wait_for_acks(20)
    cut = time.time()
    sh(old, CUT % {"peers": peers})
    try:
        # Patroni on the old primary can renew its lock neither in etcd nor through failsafe mode (it
        # reaches no other member): it demotes its server, which then refuses every write
        wait_for(f"{old} demoted", lambda: HOSTS[old].run(
            "runuser -u postgres -- psql -d postgres -XAtc 'SELECT pg_is_in_recovery()'").stdout.strip() != "f",
            TTL * 3, every=0.5)
        refused_after = time.time() - cut
        # written straight to it, as a client that ignores target_session_attrs would (timeout: a
        # commit that waits for a synchronous standby it cannot reach is not acknowledged either)
        said = HOSTS["legacy"].run(
            f"timeout 10 runuser -u buffer_app -- psql 'service=buffer_remote host={old} target_session_attrs=any "
            f"connect_timeout=3' -XAtc \"INSERT INTO buffer.ha_writes (id) VALUES (-1) ON CONFLICT DO NOTHING\"")
        wait_for(f"{new} leading", lambda: _leader_seen_from(new) == new, 90)
        writer.wait_for_acks(20)
        acked = writer.stop()
        gap = writer.longest_gap(cut)
    finally:
        sh(old, "nft delete table inet lab_partition")
    healed = time.monotonic()
    wait_for(f"{old} streaming from {new}", lambda: streaming(old), 180)
    rejoined = time.monotonic() - healed
    missing = lost(acked)
    record("partition", {"seconds_until_old_primary_refuses": round(refused_after, 1),
                         "longest_write_gap_s": round(gap, 1), "lost": len(missing),
                         "seconds_to_rejoin_after_heal": round(rejoined, 1)},
           f"{old} cut off: it refused writes after {refused_after:.1f} s (ttl {TTL} s), the writer waited at "
           f"most {gap:.1f} s on {new}, {len(missing)} commits lost, {old} streaming {rejoined:.1f} s after the heal")
    assert refused_after <= TTL + 10, f"{old} stayed a primary for {refused_after:.1f} s"
    assert said.rc != 0 and re.search(r"read-only|could not connect|timeout|refused|starting up|shutting down",
                                      said.stderr), f"{old} took a write: {said.stdout}{said.stderr}"
    assert -1 not in rows_on(new)
    assert not missing, f"acknowledged commits lost: {sorted(missing)[:10]}"


def _leader_seen_from(name: str) -> str | None:
    out = HOSTS[name].run(f"patronictl -c {PATRONI} list -f json")
    if out.rc != 0:
        return None
    found = [m["Member"] for m in json.loads(out.stdout) if m["Role"] == "Leader" and m["State"] == "running"]
    return found[0] if found else None


@UNSETTLED
def test_one_etcd_member_lost_changes_nothing_and_two_lost_leave_the_primary_in_failsafe(cluster):
    primary = ready()
    standby = other(primary)
    writer = Writer()
    writer.wait_for_acks(20)
    started = time.time()
    try:
        sh("mon1", "systemctl stop etcd")
        time.sleep(TTL)
        assert leader() == primary
        sh(standby, "systemctl stop etcd")
        # no majority: the leader lock cannot be renewed; failsafe_mode keeps the primary while it reaches
        # every member's API, and Patroni says so
        state = wait_for("failsafe mode named by the primary", lambda: _failsafe(primary), TTL * 3, every=1)
        writer.wait_for_acks(20)
        assert _writable(primary), f"{primary} stopped taking writes under failsafe mode"
    finally:
        sh("mon1", "systemctl start etcd")
        sh(standby, "systemctl start etcd")
    wait_for("the leader lock back", lambda: leader() == primary, 120)
    writer.wait_for_acks(20)
    acked = writer.stop()
    gap = writer.longest_gap(started)
    missing = lost(acked)
    record("etcd_lost", {"longest_write_gap_s": round(gap, 2), "lost": len(missing)},
           f"etcd on mon1, then on {standby} too: {primary} stayed the primary ({state}), the writer waited at most "
           f"{gap:.1f} s, {len(missing)} commits lost")
    assert not missing, f"acknowledged commits lost: {sorted(missing)[:10]}"
    assert gap <= 5, f"the writer could not write for {gap:.1f} s while etcd was short of members"


def _failsafe(host: str) -> str:
    fetch = ("import ssl, urllib.request; print(urllib.request.urlopen('https://%s:8008/metrics', timeout=5, "
             "context=ssl.create_default_context(cafile='/etc/postgresql/15/main/tls/ca.crt')).read().decode())")
    out = HOSTS[host].run(f'python3 -c "{fetch % ADDRESSES[host]}"')
    return "failsafe_mode_is_active 1" if re.search(r"^patroni_failsafe_mode_is_active\{.*\} 1$", out.stdout,
                                                    re.M) else ""


def _writable(host: str) -> bool:
    return psql(host, "SELECT NOT pg_is_in_recovery()", db="postgres") == "t"


@UNSETTLED
def test_the_standby_rebuilt_from_nothing_streams_again(cluster):
    primary = ready()
    standby = other(primary)
    # a file of the old data directory: gone once Patroni has removed it and cloned the primary again
    marker = "/var/lib/postgresql/15/main/pgharbor-before-rebuild"
    sh(standby, f"runuser -u postgres -- touch {marker}")
    started = time.monotonic()
    sh(standby, f"patronictl -c {PATRONI} reinit --force pgharbor {standby}")
    wait_for(f"{standby}'s data directory replaced", lambda: HOSTS[standby].run(f"test -e {marker}").rc == 1, 120,
             every=0.5)
    assert ready() == primary
    took = time.monotonic() - started
    size = psql(primary, "SELECT pg_size_pretty(pg_database_size('buffer'))")
    record("standby_rebuilt", {"seconds": round(took, 1)},
           f"{standby} rebuilt from {primary} (buffer {size}) and back in sync in {took:.1f} s")
