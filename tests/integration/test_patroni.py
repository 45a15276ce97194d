"""High availability with real parts on loopback: Debian's Patroni 3.0 on two
PostgreSQL 15 nodes, a three-member etcd over TLS with a login, each node
configured by the postgresql_server role's own templates (tests/patroniserver.py).
pgharbor's side (pgharbor.ha.patroni) reads the cluster, keeps the shared
settings as declared, and refuses a switchover to a standby that is behind.

A writer runs through the failovers with the retry code docs/CONNECTIONS.md
gives applications and a multi-host connection (target_session_attrs=read-write),
and records each acknowledged commit: afterwards every one must be on the new
primary. The seconds it could not write are written to reports/ha-loopback.json,
never asserted (benchmarks/README.md)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest
from ansiblerun import run_module
from patroniserver import SECRETS, PatroniCluster, start_patroni_cluster, stop_patroni_cluster
from retrysnippet import documented_snippet

from pgharbor.ha.patroni import (
    PatroniClient,
    PatroniError,
    SwitchoverRefusedError,
    ensure_dynamic_config,
    members,
    plan_switchover,
    position,
    switch_over,
)
from pgharbor.link.check import CheckSettings, check_connection

REPORT = Path(__file__).resolve().parents[2] / "reports/ha-loopback.json"


@pytest.fixture
def ha():
    cluster = start_patroni_cluster()
    yield cluster
    stop_patroni_cluster(cluster)


def api(cluster: PatroniCluster, index: int, password: str | None = None) -> PatroniClient:
    return PatroniClient(cluster.nodes[index].api, cluster.ca_file, "patroni",
                         SECRETS["postgresql_server_ha_api_password"] if password is None else password)


def record(name: str, value: dict) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    data = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    data[name] = value
    REPORT.write_text(json.dumps(data, indent=2))


class Writer(threading.Thread):
    """Commits one row after another through the documented retry code; a row
    counts as acknowledged only once its COMMIT returned."""

    def __init__(self, repo: Path, cluster: PatroniCluster) -> None:
        super().__init__(daemon=True)
        self.snippet = documented_snippet(repo)
        first, second = cluster.nodes
        self.conninfo = first.conninfo(host="127.0.0.1,127.0.0.1", port=f"{first.port},{second.port}",
                                       target_session_attrs="read-write")
        self.acked: list[tuple[int, float]] = []
        self.failed: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        n = 0
        try:
            while not self.done.is_set():
                n += 1
                # ON CONFLICT: a COMMIT cut off has an unknown outcome, so the retry may find its row there
                self.snippet["run_with_retry"](self.conninfo, lambda conn, n=n: conn.execute(
                    "INSERT INTO acked (id) VALUES (%s) ON CONFLICT DO NOTHING", [n]))
                self.acked.append((n, time.monotonic()))
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.failed = exc

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=120)
        assert self.failed is None, f"the writer gave up: {self.failed!r}"

    def longest_gap(self, since: float) -> float:
        times = [since] + [t for _, t in self.acked if t >= since]
        return max(b - a for a, b in zip(times, times[1:], strict=False)) if len(times) > 1 else float("inf")

    def wait_for_acks(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        start = len(self.acked)
        while len(self.acked) < start + count:
            assert self.failed is None and time.monotonic() < deadline, f"the writer is stuck: {self.failed!r}"
            time.sleep(0.05)


def answered_by(cluster: PatroniCluster, target_session_attrs: str) -> dict:
    """Which node the link check reports for a service naming both nodes."""
    first, second = cluster.nodes
    conninfo = first.conninfo(host="127.0.0.1,127.0.0.1", port=f"{first.port},{second.port}",
                              target_session_attrs=target_session_attrs)
    report = check_connection(conninfo, CheckSettings(attempts=1, queries=1, throughput_mb=0))
    assert report.reachable, report.problems
    return report.server


def rows_on(cluster: PatroniCluster, index: int) -> set[int]:
    return {int(x) for x in cluster.nodes[index].local("SELECT id FROM acked").split()}


def test_an_existing_server_is_adopted_and_its_standby_streams_over_tls_from_the_replication_login_only(ha):
    first, second = ha.nodes
    assert [(m.name, m.role, m.state) for m in members(api(ha, 0))] == [
        ("n1", "leader", "running"), ("n2", "replica", "running")]
    # what the single server held before high availability is on the standby
    assert second.local("SELECT count(*) FROM pg_class WHERE relname = 'acked'") == "1"
    assert first.local("SELECT r.usename || ' ' || s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)") \
        == "replicator true"
    # the application's login cannot open a replication connection, nor can a wrong password
    with pytest.raises(psycopg.OperationalError, match="no pg_hba.conf entry for replication connection"):
        psycopg.connect(first.conninfo(replication="true"))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(first.conninfo(user="replicator", password="wrong", replication="true"))
    # Patroni's configuration keeps the role's files: no pg_hba.conf of its own in the data directory
    assert first.local("SHOW hba_file") == str(first.conf_dir / "pg_hba.conf")
    assert second.local("SHOW ssl") == "on"
    # a service naming both nodes: the link check says which one answered, and what it is
    assert answered_by(ha, "read-write") == {"host": "127.0.0.1", "port": first.port, "role": "primary"}
    assert answered_by(ha, "prefer-standby") == {"host": "127.0.0.1", "port": second.port, "role": "standby"}


def test_the_shared_settings_are_declared_once_check_mode_changes_nothing_and_a_wrong_login_is_named(ha):
    wanted = {"maximum_lag_on_failover": 2097152, "synchronous_mode": True,
              "postgresql": {"parameters": {"max_connections": 120}}}
    planned = ensure_dynamic_config(api(ha, 1), wanted, check_mode=True)
    assert planned == ["maximum_lag_on_failover: 1048576 -> 2097152",
                       "postgresql.parameters.max_connections: 100 -> 120",
                       "synchronous_mode: false -> true"]
    assert api(ha, 0).dynamic_config()["maximum_lag_on_failover"] == 1048576
    assert ensure_dynamic_config(api(ha, 1), wanted) == planned
    assert ensure_dynamic_config(api(ha, 0), wanted) == []
    # max_connections waits for a restart, on both members, and Patroni says so
    ha.wait(lambda: all(api(ha, i).state().get("pending_restart") for i in (0, 1)), timeout=30,
            why="pending_restart on both members")
    ha.wait(lambda: [m.role for m in members(api(ha, 0))] == ["leader", "sync_standby"], timeout=30,
            why="n2 the synchronous standby")
    with pytest.raises(PatroniError, match="postgresql_server_ha_api_password"):
        ensure_dynamic_config(api(ha, 0, password="wrong"), {"maximum_lag_on_failover": 1})
    assert api(ha, 0).dynamic_config()["maximum_lag_on_failover"] == 2097152


def test_a_switchover_is_refused_while_the_standby_is_behind_then_done_with_every_commit_kept(repo, ha):
    first, second = ha.nodes
    # a standby whose replay is delayed (Patroni resumes a paused one by itself)
    ensure_dynamic_config(api(ha, 0), {"postgresql": {"parameters": {"recovery_min_apply_delay": "1h"}}})
    ha.wait(lambda: second.local("SHOW recovery_min_apply_delay") == "1h", timeout=30)
    for _ in range(3):
        first.local("INSERT INTO acked (id) SELECT g FROM generate_series(1000000, 1020000) g "
                    "ON CONFLICT DO NOTHING; DELETE FROM acked WHERE id >= 1000000")
    ha.wait(lambda: position(api(ha, 0), api(ha, 1)).replay_lag > 1 << 20, timeout=30)
    behind = (r"n2 has replayed \d+ bytes less than n1 has written "
              r"\(the limit, postgresql_server_switchover_max_lag_bytes, is 1048576\)")
    with pytest.raises(SwitchoverRefusedError, match=behind):
        plan_switchover(api(ha, 1), None, max_lag_bytes=1 << 20)
    ensure_dynamic_config(api(ha, 0), {"postgresql": {"parameters": {"recovery_min_apply_delay": 0}}})
    ha.wait(lambda: position(api(ha, 0), api(ha, 1)).replay_lag == 0, timeout=30)
    assert members(api(ha, 0))[0].name == "n1", "a refused switchover changes nothing"

    writer = Writer(repo, ha)
    writer.start()
    writer.wait_for_acks(20)
    started = time.monotonic()
    plan = plan_switchover(api(ha, 0), "n2", max_lag_bytes=16 << 20)
    assert (plan.leader.name, plan.candidate.name) == ("n1", "n2")
    seconds = switch_over(api(ha, 0), plan)
    writer.wait_for_acks(20)
    writer.stop()
    assert [(m.name, m.role) for m in members(api(ha, 1))] == [("n1", "replica"), ("n2", "leader")]
    assert {n for n, _ in writer.acked} <= rows_on(ha, 1), "an acknowledged commit is missing"
    # the same service now reaches the new primary, past the old one listed first
    assert answered_by(ha, "read-write") == {"host": "127.0.0.1", "port": second.port, "role": "primary"}
    record("switchover", {"seconds_to_switch": round(seconds, 2), "acknowledged": len(writer.acked), "lost": 0,
                          "longest_write_gap_s": round(writer.longest_gap(started), 2)})


def test_the_primary_killed_the_standby_takes_over_losing_no_acknowledged_commit_and_the_old_one_rejoins(repo, ha):
    ensure_dynamic_config(api(ha, 0), {"synchronous_mode": True})
    ha.wait(lambda: [m.role for m in members(api(ha, 0))] == ["leader", "sync_standby"], timeout=30,
            why="n2 the synchronous standby")
    first, second = ha.nodes
    writer = Writer(repo, ha)
    writer.start()
    writer.wait_for_acks(50)
    killed = time.monotonic()
    ha.kill(first)
    took_over = ha.wait(lambda: ha.leader() is second, timeout=60, why="n2 leading")
    writer.wait_for_acks(20)
    writer.stop()
    acked = {n for n, _ in writer.acked}
    lost = acked - rows_on(ha, 1)
    assert not lost, f"acknowledged commits lost in the failover: {sorted(lost)[:10]}"

    ha.start(first)
    rejoined = ha.wait(lambda: ha.streaming(first), timeout=120, why="n1 streaming from n2")
    assert acked <= rows_on(ha, 0)
    assert {m.name: m.role for m in members(api(ha, 1))}["n1"] in ("replica", "sync_standby")
    record("primary_killed_synchronous", {
        "seconds_until_standby_leads": round(took_over, 2), "longest_write_gap_s": round(writer.longest_gap(killed), 2),
        "acknowledged": len(acked), "lost": len(lost), "seconds_old_primary_rejoined": round(rejoined, 2)})


def test_the_modules_through_ansible_are_check_mode_honest_refuse_by_name_and_hide_the_password(repo, ha, tmp_path):
    password = SECRETS["postgresql_server_ha_api_password"]
    login = {"api_url": ha.nodes[1].api, "ca": ha.ca_file, "api_password": password}
    wanted = {**login, "config": {"maximum_lag_on_failover": 4194304}}
    rc, out, log = run_module(repo, tmp_path, "patroni_config", wanted, check=True)
    assert rc == 0 and out["changed"] and out["changes"] == ["maximum_lag_on_failover: 1048576 -> 4194304"], log
    assert api(ha, 0).dynamic_config()["maximum_lag_on_failover"] == 1048576
    rc, out, log = run_module(repo, tmp_path, "patroni_config", wanted)
    assert rc == 0 and out["changed"], log
    rc, out, log = run_module(repo, tmp_path, "patroni_config", wanted)
    assert rc == 0 and not out["changed"] and out["changes"] == [], log
    assert password not in log

    rc, out, log = run_module(repo, tmp_path, "patroni_switchover", {**login, "candidate": "n3"})
    assert rc != 0 and "n3 is not a standby of this cluster (members: n1, n2)" in out["msg"], log
    rc, out, log = run_module(repo, tmp_path, "patroni_switchover", login, check=True)
    assert rc == 0 and out["changed"] and (out["leader"], out["candidate"]) == ("n1", "n2"), log
    assert "seconds" not in out, log
    assert [m.name for m in members(api(ha, 0)) if m.is_leader] == ["n1"], "check mode switched over"
    rc, out, log = run_module(repo, tmp_path, "patroni_switchover", login)
    assert rc == 0 and out["changed"] and out["seconds"] > 0, log
    assert [m.name for m in members(api(ha, 0)) if m.is_leader] == ["n2"]
    rc, out, log = run_module(repo, tmp_path, "patroni_switchover", {**login, "api_password": "wrong"})
    assert rc != 0 and "postgresql_server_ha_api_password" in out["msg"], log
    assert password not in log


def test_the_backup_timers_act_on_the_member_chosen_and_the_others_say_who_does(ha, tmp_path, capsys):
    """pgharbor-backup and pgharbor-timetravel as their timers run them on each member: the standby
    takes nothing and says who does; the primary goes on to the backup itself."""
    from pgharbor.cli import pgharbor_backup, pgharbor_timetravel

    first, second = ha.nodes

    def run(main, config: dict, *argv: str) -> tuple[int, str]:
        path = tmp_path / "settings.json"
        path.write_text(json.dumps(config))
        code = main(["--config", str(path), *argv])
        said = capsys.readouterr()
        return code, said.out + said.err

    logical = {"directory": str(tmp_path / "backups"), "keyring": str(tmp_path / "no-keyring"),
               "recipients": ["0" * 40], "server_name": "n2"}
    code, said = run(pgharbor_backup.main, {**logical, "db": second.conninfo()}, "run")
    assert code == 0 and said.strip() == ("no backup: this server is a standby: the primary does the logical "
                                          "backups (pg_backup_cluster_member: primary)"), said
    gauges = tmp_path / "backup.prom"
    code, said = run(pgharbor_backup.main, {**logical, "db": second.conninfo()}, "status", "--prometheus", str(gauges))
    assert code == 0 and gauges.read_text().endswith('pgharbor_backup_acting{host="n2"} 0\n'), said
    # a standby chosen: the primary takes nothing
    code, said = run(pgharbor_backup.main, {**logical, "db": first.conninfo(), "cluster_member": "standby"}, "run")
    assert code == 0 and "this server is a primary: the standby does the logical backups" in said, said
    # the member chosen goes on to the backup (here it fails on the keyring it was given: it tried)
    code, said = run(pgharbor_backup.main, {**logical, "db": first.conninfo()}, "run")
    assert code == 1 and said.startswith("backup failed:"), said

    layer = {"stanza": "main", "pgbackrest_config": str(tmp_path / "no-pgbackrest.conf"), "host": "n2",
             "run_log": str(tmp_path / "runs.json")}
    for argv in (["backup", "--type", "incr"], ["drill"]):
        code, said = run(pgharbor_timetravel.main, {**layer, "db": second.conninfo()}, *argv)
        assert code == 0 and said.strip().endswith(
            "this server is a standby: the primary does time travel's backups, drills and archiving"), said
    gauges = tmp_path / "timetravel.prom"
    code, said = run(pgharbor_timetravel.main, {**layer, "db": second.conninfo()}, "status", "--prometheus",
                     str(gauges))
    assert code == 0 and gauges.read_text().endswith('pgharbor_timetravel_acting{host="n2"} 0\n'), said
    code, said = run(pgharbor_timetravel.main, {**layer, "db": first.conninfo()}, "backup", "--type", "incr")
    # the primary goes on to pgBackRest (here without a configuration: the stanza and the backup fail, named)
    assert code == 1 and "pgbackrest stanza-create" in said and "backup to repo1: FAILED" in said, said
    code, said = run(pgharbor_timetravel.main, layer | {"db": second.conninfo()}, "on-role-change", "on_role_change",
                     "replica", "pgharbor")
    assert code == 0 and "nothing to do on a standby" in said, said
