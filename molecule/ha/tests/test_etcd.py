"""The etcd cluster as its clients and an intruder see it: three members
over TLS, every client logged in and kept to its prefix, a peer without the
CA's certificate refused, a majority that serves with one member lost and
refuses writes with two lost, and the role's secrets kept from the files
anyone may read."""

from __future__ import annotations

import json
import time

import pytest
import testinfra

MEMBERS = [testinfra.get_host(f"podman://etcd{i}") for i in (1, 2, 3)]
ROOT = "root:molecule root password"
PATRONI = "patroni:molecule patroni password"
CA = "/etc/etcd/tls/ca.crt"


def address(host) -> str:
    return host.check_output("hostname -I").split()[0]


def etcdctl(host, *args: str, user: str | None = ROOT, endpoints: list | None = None):
    """etcdctl on host, as an operator runs it there: the members' client URLs, the CA, a login."""
    urls = ",".join(f"https://{address(m)}:2379" for m in (endpoints or [host]))
    env = f"ETCDCTL_API=3 ETCDCTL_CACERT={CA} ETCDCTL_ENDPOINTS={urls} ETCDCTL_DIAL_TIMEOUT=3s "
    login = f"ETCDCTL_USER='{user}' " if user else ""
    return host.run(env + login + "etcdctl --command-timeout=5s " + " ".join(args))


def healthy(host) -> int:
    """How many members answer host's etcdctl as healthy (it says so on stderr)."""
    health = etcdctl(host, "endpoint", "health", endpoints=MEMBERS)
    return (health.stdout + health.stderr).count(" is healthy")


def test_three_members_one_cluster_over_tls():
    out = etcdctl(MEMBERS[0], "member", "list", "-w", "json")
    assert out.rc == 0, out.stderr
    members = json.loads(out.stdout)["members"]
    assert sorted(m["name"] for m in members) == ["etcd1", "etcd2", "etcd3"]
    for member in members:
        assert all(url.startswith("https://") for url in member["peerURLs"] + member["clientURLs"])
    assert healthy(MEMBERS[0]) == 3


# Fetches a URL from a member with the CA (and a client certificate when
# given): prints the answer, or exits 1 with the reason.
FETCH = r"""
import ssl, sys, urllib.request
url, ca, cert = sys.argv[1], sys.argv[2], sys.argv[3:]
context = ssl.create_default_context(cafile=ca)
if cert:
    context.load_cert_chain(*cert)
try:
    print(urllib.request.urlopen(url, timeout=5, context=context).read().decode())
except Exception as exc:
    sys.exit(f"{type(exc).__name__}: {exc}")
"""


def fetch(host, url: str, *cert: str):
    return host.run("python3 -c %s %s %s " + " ".join(["%s"] * len(cert)), FETCH, url, CA, *cert)


def test_plain_http_gets_no_answer():
    assert fetch(MEMBERS[1], f"http://{address(MEMBERS[0])}:2379/health").rc != 0
    assert fetch(MEMBERS[1], f"https://{address(MEMBERS[0])}:2379/health").rc == 0


def test_every_client_logs_in_and_stays_in_its_prefix():
    anonymous = etcdctl(MEMBERS[1], "get", "/service/", "--prefix", user=None)
    assert anonymous.rc != 0 and "user name is empty" in anonymous.stderr
    wrong = etcdctl(MEMBERS[1], "get", "/service/x", user="patroni:not it")
    assert wrong.rc != 0 and "authentication failed" in wrong.stderr
    assert etcdctl(MEMBERS[1], "put", "/service/pgharbor/probe", "1", user=PATRONI).rc == 0
    outside = etcdctl(MEMBERS[1], "put", "/elsewhere", "1", user=PATRONI)
    assert outside.rc != 0 and "permission denied" in outside.stderr
    users = etcdctl(MEMBERS[2], "user", "list", user=PATRONI)
    assert users.rc != 0 and "permission denied" in users.stderr
    assert etcdctl(MEMBERS[2], "user", "list").stdout.split() == ["patroni", "root"]


def test_a_peer_without_the_cas_certificate_is_refused():
    """The peer port answers TLS only to a client certificate of the CA."""
    url = f"https://{address(MEMBERS[0])}:2380/members"
    bare = fetch(MEMBERS[1], url)
    assert bare.rc != 0, bare.stdout
    member = fetch(MEMBERS[1], url, "/etc/etcd/tls/member.crt", "/etc/etcd/tls/member.key")
    assert member.rc == 0 and "etcd1" in member.stdout, member.stderr


def test_the_key_is_etcds_alone_and_no_password_is_in_a_file():
    key = MEMBERS[0].file("/etc/etcd/tls/member.key")
    assert (key.user, key.mode) == ("etcd", 0o600)
    settings = MEMBERS[0].file("/etc/default/etcd").content_string
    assert "molecule root password" not in settings and "molecule patroni password" not in settings
    assert 'ETCD_PEER_CLIENT_CERT_AUTH="true"' in settings
    # The package's own single-member cluster was stopped and removed.
    assert not MEMBERS[0].file("/var/lib/etcd/default").exists


def wait_for(what, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while not (result := what()):
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s in vain")
        time.sleep(1)
    return result


def test_one_member_lost_changes_nothing_two_lost_stop_writes():
    first, second, third = MEMBERS
    try:
        first.check_output("systemctl stop etcd")
        put = etcdctl(second, "put", "/service/pgharbor/one-lost", "1", user=PATRONI, endpoints=[second, third])
        assert put.rc == 0, put.stderr
        second.check_output("systemctl stop etcd")
        refused = etcdctl(third, "put", "/service/pgharbor/two-lost", "1", user=PATRONI)
        assert refused.rc != 0
        health = etcdctl(third, "endpoint", "health")
        assert health.rc != 0 and "is unhealthy" in health.stdout + health.stderr
    finally:
        # Each start waits for a majority: the first returns once the second is up.
        for member in (first, second):
            member.run("systemctl start --no-block etcd")
    wait_for(lambda: healthy(first) == 3)
    got = etcdctl(third, "get", "/service/pgharbor/one-lost", "--print-value-only", user=PATRONI)
    assert got.stdout.strip() == "1"
    assert etcdctl(third, "get", "/service/pgharbor/two-lost", "--print-value-only", user=PATRONI).stdout == ""


def test_check_mode_on_the_converged_cluster_changes_nothing(run_playbook):
    done = run_playbook("converge.yml", "--check", "--diff")
    assert done.returncode == 0, done.stdout[-3000:]
    recap = [line for line in done.stdout.splitlines() if line.startswith("etcd")]
    assert len(recap) == 3 and all(" changed=0 " in line for line in recap), done.stdout[-2000:]


@pytest.mark.parametrize(("args", "named"), [
    (["--limit", "etcd1,etcd2"], "every member must be in this play"),
    (["-e", '{"etcd_members": ["etcd1", "etcd2"]}'], "have an odd number of members"),
])
def test_members_that_do_not_make_a_cluster_are_refused_before_anything_changes(run_playbook, args, named):
    before = MEMBERS[0].file("/etc/default/etcd").content_string
    done = run_playbook("converge.yml", *args)
    assert done.returncode != 0 and named in " ".join(done.stdout.split()), done.stdout[-2000:]
    assert MEMBERS[0].file("/etc/default/etcd").content_string == before


def test_a_member_that_lost_its_data_rejoins_when_the_role_runs_again(run_playbook):
    """A disk lost on the witness: the role removes the cluster's entry for the
    old member, adds it again and starts it as joining; it gets the data."""
    first, _, third = MEMBERS
    assert etcdctl(first, "put", "/service/pgharbor/before-the-loss", "kept", user=PATRONI).rc == 0
    third.check_output("systemctl stop etcd && rm -rf /var/lib/etcd/pgharbor")
    done = run_playbook("converge.yml", "-v")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "member etcd3 at https://" in done.stdout and "removed (it lost its data)" in done.stdout
    assert "molecule root password" not in done.stdout
    wait_for(lambda: healthy(first) == 3)
    got = etcdctl(third, "get", "/service/pgharbor/before-the-loss", "--print-value-only", user=PATRONI,
                  endpoints=[third])
    assert got.stdout.strip() == "kept", got.stderr
    again = run_playbook("converge.yml")
    recap = [line for line in again.stdout.splitlines() if line.startswith("etcd")]
    assert len(recap) == 3 and all(" changed=0 " in line for line in recap), again.stdout[-2000:]
