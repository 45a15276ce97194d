"""The firewall as the network sees it: probes from an allowed and a denied
client, and from the controller over SSH, where a lock-out must undo itself."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
import testinfra

HOST = testinfra.get_host("podman://fw-host")
ALLOWED = testinfra.get_host("podman://fw-allowed")
DENIED = testinfra.get_host("podman://fw-denied")
CANDIDATE = "/etc/pgharbor/firewall/pgharbor.nft"
PERSISTED = "/etc/nftables.conf"

# Connects and reports what happened: "timeout" (dropped), "refused" (a reset
# came back), or "open" with the first bytes the server sent. To PostgreSQL it
# sends an SSLRequest first: the one-byte answer (S or N) is PostgreSQL talking.
PROBE = r"""
import socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
conn = socket.socket()
conn.settimeout(timeout)
try:
    conn.connect((host, port))
except socket.timeout:
    sys.exit(print("timeout"))
except ConnectionRefusedError:
    sys.exit(print("refused"))
if port == 5432:
    conn.sendall(bytes.fromhex("0000000804d2162f"))
try:
    print("open", conn.recv(16))
except socket.timeout:
    print("open", b"")
"""


def address(host) -> str:
    return host.check_output("hostname -I").split()[0]


def probe(client, port: int, timeout: float = 3) -> str:
    return client.check_output("python3 -c %s %s %s %s", PROBE, address(HOST), str(port), str(timeout))


def probe_from_controller(port: int, timeout: float = 3) -> str:
    argv = [sys.executable, "-c", PROBE, address(HOST), str(port), str(timeout)]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


def dropped() -> int:
    listing = HOST.check_output("nft list counter inet pgharbor dropped")
    return int(re.search(r"packets (\d+)", listing).group(1))


def live_table() -> str:
    """The live table without the sets that traffic fills (the per-source rate
    limit's), so that two listings compare the rules."""
    listing = HOST.check_output("nft --stateless list table inet pgharbor")
    return re.sub(r"\tset flood_v[46] \{.*?\n\t\}\n", "", listing, flags=re.S)


def revert_armed() -> bool:
    return HOST.run("systemctl is-active --quiet pgharbor-firewall-revert.timer").rc == 0


def recap_changed(output: str, host: str) -> int:
    return int(re.search(rf"^{host}\s+:.*changed=(\d+)", output, re.M).group(1))


def test_allowed_client_reaches_ssh_and_postgresql():
    assert probe(ALLOWED, 22).startswith("open b'SSH-2.0")
    assert probe(ALLOWED, 5432) in ("open b'S'", "open b'N'")


def test_denied_client_is_dropped_not_refused():
    before = dropped()
    assert probe(DENIED, 22) == "timeout"
    assert probe(DENIED, 5432) == "timeout"
    # The retransmitted SYNs are counted too: at least one per probe.
    assert dropped() >= before + 2


def test_ping_is_answered_for_everyone():
    # ICMP is not a service: errors and (rate limited) echo pass from anyone.
    assert DENIED.run("ping -c 1 -W 2 %s", address(HOST)).rc == 0


def test_a_listening_port_nobody_is_allowed_is_dropped_for_everyone():
    # The web server answers on the host itself (loopback passes) ...
    assert HOST.run("python3 -c %s 127.0.0.1 8080 3", PROBE).stdout.startswith("open")
    # ... and nobody gets there from outside, not even the allowed client.
    assert probe(ALLOWED, 8080) == "timeout"
    assert probe(DENIED, 8080) == "timeout"


def test_ruleset_is_default_drop_with_ipv6_sets():
    table = live_table()
    assert "type filter hook input priority filter; policy drop;" in table
    assert "2001:db8:a::/48" in table and "2001:db8:b::/64" in table
    assert 'log prefix "pgharbor-fw drop: "' in table


def test_other_tools_tables_are_left_alone():
    assert "table inet othertool" in HOST.check_output("nft list tables")


def test_ruleset_is_persisted_and_comes_back_with_the_service():
    assert HOST.file(PERSISTED).content_string == HOST.file(CANDIDATE).content_string
    assert HOST.service("nftables").is_enabled
    before = live_table()
    # What a reboot does: the unit stops (removing pgharbor's table only) and loads the file.
    HOST.check_output("systemctl restart nftables")
    assert live_table() == before
    assert "table inet othertool" in HOST.check_output("nft list tables")
    assert probe(DENIED, 5432) == "timeout"


def test_new_connections_over_the_rate_limit_are_dropped():
    # 5/second with a burst of 10 (molecule.yml): 40 connections at once cannot all pass.
    burst = ALLOWED.check_output(
        "python3 -c %s %s",
        "import socket, sys\n"
        "ok = 0\n"
        "for _ in range(40):\n"
        "    try:\n"
        "        socket.create_connection((sys.argv[1], 5432), timeout=0.5).close(); ok += 1\n"
        "    except OSError:\n"
        "        pass\n"
        "print(ok)",
        address(HOST),
    )
    assert 0 < int(burst) < 40
    time.sleep(3)  # the bucket refills
    assert probe(ALLOWED, 5432).startswith("open")


def test_check_mode_on_the_converged_host_changes_nothing(run_playbook):
    result = run_playbook("converge.yml", "--check", "--diff")
    assert result.returncode == 0, result.stdout
    assert recap_changed(result.stdout, "fw-host") == 0


def test_check_mode_shows_a_change_without_making_it(run_playbook):
    before = live_table()
    services = [{"name": "postgresql", "port": 5433, "sources": ["192.0.2.7"]}]
    result = run_playbook("converge.yml", "--check", "--diff", extra_vars={"firewall_services": services})
    assert result.returncode == 0, result.stdout
    assert re.search(r"^\+\s+tcp dport 5433 ip saddr @postgresql_v4 accept", result.stdout, re.M)
    assert re.search(r"^-\s+tcp dport 5432 ip saddr @postgresql_v4 accept", result.stdout, re.M)
    assert live_table() == before
    assert not revert_armed()


def test_a_broken_ruleset_is_rejected_and_the_old_one_stays(run_playbook):
    before = live_table()
    candidate = HOST.file(CANDIDATE).sha256sum
    result = run_playbook("converge.yml", extra_vars={"firewall_extra_rules": ["tcp dport 9999 acept"]})
    assert result.returncode != 0
    assert "failed to validate" in result.stdout
    assert "syntax error" in result.stdout
    assert live_table() == before
    assert HOST.file(CANDIDATE).sha256sum == candidate
    assert not revert_armed()


def test_the_helper_refuses_a_broken_file_before_arming_anything():
    HOST.check_output("printf 'table inet pgharbor { chain input { junk } }\\n' > /tmp/broken.nft")
    before = live_table()
    result = HOST.run("pgharbor-firewall apply /tmp/broken.nft 30")
    assert result.rc != 0 and "syntax error" in result.stderr
    assert live_table() == before
    assert not revert_armed()


def test_a_second_apply_before_confirmation_keeps_the_confirmed_way_back():
    before = live_table()
    for port in (5433, 5434):
        HOST.check_output(f"sed 's/dport 5432/dport {port}/' {CANDIDATE} > /tmp/{port}.nft")
    # An apply whose confirmation never came (the controller died), then another one.
    HOST.check_output("pgharbor-firewall apply /tmp/5433.nft 60")
    HOST.check_output("pgharbor-firewall apply /tmp/5434.nft 60")
    assert "dport 5434" in live_table() and revert_armed()
    # What the timer runs: back to the last confirmed table, not to 5433.
    HOST.check_output("pgharbor-firewall revert /tmp/5434.nft")
    assert live_table() == before
    assert not revert_armed()


def test_confirming_after_the_revert_ran_is_refused():
    result = HOST.run("pgharbor-firewall confirm /tmp/5434.nft")
    assert result.rc != 0 and "the revert ran before the confirmation came" in result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("firewall_admin_networks", ["10.0.0.300"], "firewall_admin_networks: '10.0.0.300' is not an IP address"),
        ("firewall_admin_networks", ["10.1.2.3/8"], "has host bits set"),
        ("firewall_admin_networks", [], "firewall_admin_networks is empty"),
        ("firewall_confirm_timeout", 200, "firewall_confirm_timeout (200) must be at least 5 and below"),
        ("firewall_new_connection_limit", "fast", "rates such as 50/second"),
        ("firewall_services", [{"name": "Pg-1", "port": 5432, "sources": ["10.0.0.1"]}],
         "firewall_services entry Pg-1"),
        ("firewall_services", [{"name": "pg", "port": 5432, "protocol": "sctp", "sources": []}],
         "protocol must be one of: tcp, udp"),
    ],
)
def test_a_bad_setting_is_named_before_anything_changes(run_playbook, setting, value, message):
    before = live_table()
    result = run_playbook("converge.yml", extra_vars={setting: value})
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split()), result.stdout
    assert live_table() == before


# Over SSH from here, the way production runs it: the reconnect after loading
# the ruleset is a real new TCP connection through it.

def test_a_change_over_ssh_is_confirmed_and_persisted(run_playbook):
    result = run_playbook("over_ssh.yml", extra_vars={"firewall_icmp_echo_limit": ""})
    assert result.returncode == 0, result.stdout
    assert recap_changed(result.stdout, "fw-host") > 0
    assert not revert_armed()
    assert "echo-request" not in HOST.file(PERSISTED).content_string
    assert HOST.file(PERSISTED).content_string == HOST.file(CANDIDATE).content_string


def test_a_ruleset_shutting_out_the_controller_is_refused_before_it_is_loaded(run_playbook):
    before = live_table()
    allowed_only = [address(ALLOWED)]
    result = run_playbook("over_ssh.yml", extra_vars={"firewall_admin_networks": allowed_only})
    assert result.returncode != 0
    assert "which is not in firewall_admin_networks" in " ".join(result.stdout.split())
    assert live_table() == before
    assert not revert_armed()


def test_the_revert_fires_when_confirmation_never_comes(run_playbook):
    before = live_table()
    persisted = HOST.file(PERSISTED).sha256sum
    # sshd listens on 22; a ruleset that only lets SSH in on 2222 locks the controller out.
    result = run_playbook("over_ssh.yml", extra_vars={"firewall_ssh_port": 2222})
    assert result.returncode != 0
    assert "No new connection to fw-host within 10 s" in " ".join(result.stdout.split())

    # The bad ruleset is live, and the controller is shut out for real.
    assert "tcp dport 2222" in live_table()
    assert revert_armed()
    assert probe_from_controller(22) == "timeout"

    deadline = time.monotonic() + 60
    while revert_armed() and time.monotonic() < deadline:
        time.sleep(2)
    assert live_table() == before
    assert probe_from_controller(22).startswith("open b'SSH-2.0")
    # Boot would still load the confirmed ruleset; the unconfirmed one is gone.
    assert HOST.file(PERSISTED).sha256sum == persisted
    assert not HOST.file(CANDIDATE).exists
    assert "previous one is back" in HOST.check_output("journalctl -t pgharbor-firewall --no-pager")

    # The next run writes the candidate again and finds nothing else to do.
    again = run_playbook("over_ssh.yml", extra_vars={"firewall_icmp_echo_limit": ""})
    assert again.returncode == 0, again.stdout
    assert HOST.file(PERSISTED).content_string == HOST.file(CANDIDATE).content_string
