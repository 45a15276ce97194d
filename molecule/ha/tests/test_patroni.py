"""The Patroni cluster postgresql_server makes of two DB servers (etcd1, etcd2)
with the etcd cluster of the three: the first member's existing cluster led by
Patroni, the second cloned from it and streaming over TLS from the replication
login, the role's own pg_hba.conf in force on both, the secrets in a file only
postgres reads; a killed primary replaced by the standby, and the old primary
back as a standby (pg_rewind) once Patroni runs there again."""

from __future__ import annotations

import json
import time

import testinfra

FIRST, SECOND, WITNESS = (testinfra.get_host(f"podman://etcd{i}") for i in (1, 2, 3))
CONFIG = "/etc/patroni/15-main.yml"


def sql(host, query: str, db: str = "postgres") -> str:
    return host.check_output(f"runuser -u postgres -- psql -XAtq -d {db} -c \"{query}\"")


def cluster(host) -> dict[str, tuple[str, str]]:
    """Each member's role and state as patronictl lists them (3.0.2 says a streaming replica is "running")."""
    out = host.check_output(f"runuser -u postgres -- patronictl -c {CONFIG} list -f json")
    return {m["Member"]: (m["Role"], m["State"]) for m in json.loads(out)}


def address(host) -> str:
    return host.check_output("hostname -I").split()[0]


def wait_for(what, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        try:
            if what():
                return
        except AssertionError:
            pass
        assert time.monotonic() < deadline, f"not reached in {timeout} s"
        time.sleep(1)


def test_the_first_member_leads_with_its_data_and_the_second_streams_over_tls():
    wait_for(lambda: cluster(FIRST) == {"etcd1": ("Leader", "running"), "etcd2": ("Replica", "running")})
    assert sql(FIRST, "SELECT r.usename || ' ' || s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)") \
        == "replicator true"
    # what the role made on the primary reached the standby
    assert sql(SECOND, "SELECT count(*) FROM pg_roles WHERE rolname IN ('app_rw', 'buffer_owner')") == "2"
    assert sql(SECOND, "SELECT pg_is_in_recovery()") == "t"
    for host in (FIRST, SECOND):
        assert sql(host, "SHOW hba_file") == "/etc/postgresql/15/main/pg_hba.conf"
        assert sql(host, "SHOW ssl") == "on"
        assert host.service("patroni@15-main").is_enabled and host.service("patroni@15-main").is_running
        assert not host.service("postgresql@15-main").is_enabled
        assert host.file("/etc/postgresql/15/main/start.conf").content_string.strip().endswith("manual")


# A replication connection as the replication login, from the host it runs on (psycopg, which base installs).
REPLICATE = """python3 -c 'import psycopg, sys
psycopg.connect(host=sys.argv[1], dbname="postgres", user="replicator", password="molecule replication password",
                sslmode="verify-full", sslrootcert="/etc/etcd/tls/ca.crt", replication="true", connect_timeout=5)' """


def test_patronis_file_is_postgres_alone_and_replication_is_refused_from_outside_the_members():
    config = FIRST.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("postgres", "postgres", 0o600)
    # the witness is no member: no replication from it, even with the right password
    refused = WITNESS.run(REPLICATE + address(FIRST))
    assert refused.rc != 0 and "no pg_hba.conf entry for replication connection" in refused.stderr, refused.stderr
    member = SECOND.run(REPLICATE + address(FIRST))
    assert member.rc == 0, member.stderr


def test_the_switchover_playbook_checks_first_refuses_by_name_and_hands_over(run_playbook):
    wait_for(lambda: cluster(FIRST) == {"etcd1": ("Leader", "running"), "etcd2": ("Replica", "running")})
    playbook = "../../playbooks/switchover.yml"
    rehearsal = run_playbook(playbook, "--check")
    assert rehearsal.returncode == 0, rehearsal.stdout[-3000:]
    assert "etcd1 handed over to etcd2" in " ".join(rehearsal.stdout.split()) and "check mode: not done" in \
        " ".join(rehearsal.stdout.split()), rehearsal.stdout[-3000:]
    assert cluster(FIRST)["etcd1"][0] == "Leader", "check mode switched over"
    refused = run_playbook(playbook, "-e", "postgresql_server_switchover_candidate=etcd3")
    assert refused.returncode != 0 and "etcd3 is not a standby of this cluster (members: etcd1, etcd2)" in \
        " ".join(refused.stdout.split()), refused.stdout[-3000:]
    done = run_playbook(playbook)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "etcd1 handed over to etcd2" in " ".join(done.stdout.split()), done.stdout[-3000:]
    assert "molecule api password" not in done.stdout + rehearsal.stdout + refused.stdout
    wait_for(lambda: cluster(FIRST) == {"etcd1": ("Replica", "running"), "etcd2": ("Leader", "running")})
    back = run_playbook(playbook, "-e", "postgresql_server_switchover_candidate=etcd1")
    assert back.returncode == 0, back.stdout[-3000:]
    wait_for(lambda: cluster(FIRST) == {"etcd1": ("Leader", "running"), "etcd2": ("Replica", "running")})


def test_a_killed_primary_is_replaced_comes_back_as_a_standby_and_the_role_then_changes_nothing(run_playbook):
    wait_for(lambda: cluster(FIRST)["etcd2"] == ("Replica", "running"))
    # in public, outside the application's schemas, so that no grant of the role concerns it
    sql(FIRST, "CREATE TABLE IF NOT EXISTS public.failover_probe (id int); INSERT INTO failover_probe VALUES (1)",
        db="buffer")
    wait_for(lambda: sql(SECOND, "SELECT count(*) FROM failover_probe", db="buffer") == "1", timeout=30)
    FIRST.check_output("systemctl kill -s KILL patroni@15-main; pkill -KILL -u postgres -f 'postgres -D' || true")
    started = time.monotonic()
    wait_for(lambda: cluster(SECOND).get("etcd2") == ("Leader", "running"), timeout=90)
    print(f"etcd2 led {time.monotonic() - started:.1f} s after etcd1 was killed")
    assert sql(SECOND, "SELECT pg_is_in_recovery()") == "f"
    sql(SECOND, "INSERT INTO failover_probe VALUES (2)", db="buffer")
    FIRST.check_output("systemctl reset-failed patroni@15-main; systemctl start patroni@15-main")
    wait_for(lambda: cluster(SECOND).get("etcd1") == ("Replica", "running"), timeout=120)
    wait_for(lambda: sql(FIRST, "SELECT count(*) FROM failover_probe", db="buffer") == "2", timeout=30)
    # the role follows the new primary: nothing to change on either member
    again = run_playbook("converge.yml")
    recap = [line for line in again.stdout.splitlines() if line.startswith("etcd")]
    assert len(recap) == 3 and all(" changed=0 " in line for line in recap), again.stdout[-3000:]
