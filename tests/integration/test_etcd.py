"""etcd as the etcd role manages it (modules etcd_auth and etcd_member, logic
in pgharbor.ha.etcd), against a real three-member etcd cluster on loopback
over TLS. Authentication: from a cluster with authentication off to one where each client
logs in and reaches its own prefix only, over TLS only; check mode changes nothing; a
second run changes nothing; a wrong root password is named; a user taken out
of the declaration loses its access. Membership: a member that lost its data
is welcomed back under a new identity and gets the data; nothing is changed
in check mode or twice; without a majority the change is refused."""

from __future__ import annotations

import shutil
import time
import urllib.request
from base64 import b64decode, b64encode

import pytest
from ansiblerun import run_module
from etcdserver import start_cluster, stop_cluster

from pgharbor.ha.etcd import EtcdClient, EtcdError, EtcdUser, ensure_auth, ensure_member

ROOT_PASSWORD = "root secret 1"
PATRONI_PASSWORD = "patroni secret 2"
PATRONI = EtcdUser("patroni", PATRONI_PASSWORD, ("/service/",))


@pytest.fixture
def cluster():
    cluster = start_cluster()
    yield cluster
    stop_cluster(cluster)


def client(cluster, user: str | None = None, password: str = "") -> EtcdClient:
    c = EtcdClient(cluster.members[0].url, cluster.ca_file)
    if user:
        c.login(user, password)
    return c


def put(c: EtcdClient, key: str, value: str = "x") -> None:
    c.call("kv/put", {"key": b64encode(key.encode()).decode(), "value": b64encode(value.encode()).decode()})


def test_authentication_on_each_client_in_its_own_prefix_and_a_second_run_changes_nothing(cluster):
    anonymous = client(cluster)
    planned = ensure_auth(anonymous, ROOT_PASSWORD, [PATRONI], check_mode=True)
    assert planned[-1] == "authentication enabled" and "user patroni added" in planned
    assert anonymous.users() == [], "check mode changed etcd"

    assert ensure_auth(client(cluster), ROOT_PASSWORD, [PATRONI]) == planned
    assert ensure_auth(client(cluster), ROOT_PASSWORD, [PATRONI]) == []

    with pytest.raises(EtcdError, match="user name is empty"):
        client(cluster).users()
    with pytest.raises(OSError):  # TLS only: plain HTTP gets no answer
        urllib.request.urlopen(f"http://127.0.0.1:{cluster.members[0].client_port}/health", timeout=5)  # noqa: S310
    patroni = client(cluster, "patroni", PATRONI_PASSWORD)
    put(patroni, "/service/pgharbor/leader")
    with pytest.raises(EtcdError, match="permission denied"):
        put(patroni, "/other")
    with pytest.raises(EtcdError, match="permission denied"):
        patroni.users()
    # Every member answers with the same users: the state is the cluster's.
    other = EtcdClient(cluster.members[2].url, cluster.ca_file)
    other.login("root", ROOT_PASSWORD)
    assert sorted(other.users()) == ["patroni", "root"]


def test_a_wrong_root_password_is_named_and_changes_nothing(cluster):
    ensure_auth(client(cluster), ROOT_PASSWORD, [PATRONI])
    with pytest.raises(EtcdError, match="etcd_root_password is not the password etcd's root user has"):
        ensure_auth(client(cluster), "not it", [PATRONI, EtcdUser("intruder", "x", ("/",))])
    assert sorted(client(cluster, "root", ROOT_PASSWORD).users()) == ["patroni", "root"]


def test_a_new_password_a_new_prefix_and_a_removed_user_take_effect(cluster):
    ensure_auth(client(cluster), ROOT_PASSWORD, [PATRONI, EtcdUser("old", "old secret", ("/old/",))])
    moved = EtcdUser("patroni", "patroni secret 3", ("/service/", "/pgharbor/"))
    changes = ensure_auth(client(cluster), ROOT_PASSWORD, [moved])
    assert changes == ["role patroni may readwrite /pgharbor/*", "user patroni's password set",
                       "user old removed", "role old removed"]
    with pytest.raises(EtcdError, match="invalid user ID or password"):
        client(cluster, "patroni", PATRONI_PASSWORD)
    with pytest.raises(EtcdError, match="invalid user ID or password"):
        client(cluster, "old", "old secret")
    put(client(cluster, "patroni", "patroni secret 3"), "/pgharbor/x")
    assert ensure_auth(client(cluster), ROOT_PASSWORD, [moved]) == []


def test_root_is_not_a_client_and_a_prefix_of_everything_is_refused(cluster):
    with pytest.raises(EtcdError, match="etcd_users names root"):
        ensure_auth(client(cluster), ROOT_PASSWORD, [EtcdUser("root", "x", ("/a/",))])
    with pytest.raises(EtcdError, match="covers every key"):
        ensure_auth(client(cluster), ROOT_PASSWORD, [EtcdUser("all", "x", ("",))])


def test_a_member_down_is_named_with_its_url(cluster):
    cluster.stop(cluster.members[0])
    with pytest.raises(EtcdError, match=f"etcd at {cluster.members[0].url} did not answer"):
        ensure_auth(client(cluster), ROOT_PASSWORD, [PATRONI])
    # The two left have quorum: the state can be set through either.
    survivor = EtcdClient(cluster.members[1].url, cluster.ca_file)
    assert "authentication enabled" in ensure_auth(survivor, ROOT_PASSWORD, [PATRONI])


def test_the_module_through_ansible_is_check_mode_honest_and_hides_the_passwords(repo, cluster, tmp_path):
    args = {"endpoint": cluster.members[1].url, "ca": cluster.ca_file, "root_password": ROOT_PASSWORD,
            "users": [{"name": "patroni", "password": PATRONI_PASSWORD, "prefixes": ["/service/"]}]}
    rc, out, log = run_module(repo, tmp_path, "etcd_auth", args, check=True)
    assert rc == 0 and out["changed"] and "authentication enabled" in out["changes"], log
    rc, out, log = run_module(repo, tmp_path, "etcd_auth", args)
    assert rc == 0 and out["changed"], log
    rc, out, log2 = run_module(repo, tmp_path, "etcd_auth", args)
    assert rc == 0 and not out["changed"] and out["changes"] == [], log2
    rc, out, log3 = run_module(repo, tmp_path, "etcd_auth", {**args, "root_password": "wrong"})
    assert rc != 0 and "etcd_root_password" in out["msg"], log3
    for text in (log, log2, log3):
        assert ROOT_PASSWORD not in text and PATRONI_PASSWORD not in text



def test_a_member_that_lost_its_data_is_welcomed_back_and_gets_the_data(cluster):
    ensure_auth(client(cluster), ROOT_PASSWORD, [PATRONI])
    put(client(cluster, "patroni", PATRONI_PASSWORD), "/service/pgharbor/leader", "db1")
    lost = cluster.members[2]
    cluster.stop(lost)
    shutil.rmtree(cluster.workdir / f"{lost.name}.data")
    peer_url = f"https://127.0.0.1:{lost.peer_port}"
    planned = ensure_member(client(cluster), ROOT_PASSWORD, lost.name, peer_url, check_mode=True)
    assert planned == [f"member {lost.name} at {peer_url} removed (it lost its data)",
                       f"member {lost.name} at {peer_url} added"]
    assert ensure_member(client(cluster), ROOT_PASSWORD, lost.name, peer_url) == planned
    # Added and not started yet: the entry wanted, left as it is.
    assert ensure_member(client(cluster), ROOT_PASSWORD, lost.name, peer_url) == []
    cluster.start(lost, state="existing")
    cluster.wait_healthy()
    back = EtcdClient(lost.url, cluster.ca_file)
    deadline = time.monotonic() + 30
    while True:
        try:
            back.login("patroni", PATRONI_PASSWORD)
            break
        except EtcdError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    found = back.call("kv/range", {"key": b64encode(b"/service/pgharbor/leader").decode()})["kvs"]
    assert b64decode(found[0]["value"]) == b"db1"


def test_without_a_majority_a_member_is_not_added(cluster):
    ensure_auth(client(cluster), ROOT_PASSWORD, [PATRONI])
    for member in cluster.members[1:]:
        cluster.stop(member)
    with pytest.raises(EtcdError, match="etcd at .* (refused|did not answer)"):
        ensure_member(client(cluster), ROOT_PASSWORD, "m3", f"https://127.0.0.1:{cluster.members[2].peer_port}")
