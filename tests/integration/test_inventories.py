"""Every environment's inventory keeps the firewall and pg_hba.conf in step:
on each DB server the firewall's PostgreSQL entry opens the port the server
listens on, to exactly the networks pg_hba.conf allows. Rendered by real
ansible (the debug module runs on the controller, no host is contacted)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ANSIBLE = str(Path(sys.executable).parent / "ansible")
REPO = Path(__file__).resolve().parents[2]
INVENTORIES = sorted(p for p in (REPO / "inventories").iterdir() if p.is_dir())

EXPRESSION = (
    "{{ {'firewall': firewall_services | selectattr('name', 'equalto', 'postgresql') | list,"
    " 'hba': postgresql_server_client_networks, 'port': postgresql_server_port} | to_json }}"
)


def rendered(inventory: Path, hosts: str = "db_servers", expression: str = EXPRESSION) -> dict[str, dict]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [ANSIBLE, "-i", str(inventory), hosts, "-o", "-m", "ansible.builtin.debug", "-a", f"msg={expression}"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = {}
    for line in result.stdout.splitlines():
        match = re.match(r"^(\S+) \| SUCCESS => (.*)$", line)
        if match:
            found[match.group(1)] = json.loads(json.loads(match.group(2))["msg"])
    return found


@pytest.mark.parametrize("inventory", INVENTORIES, ids=[p.name for p in INVENTORIES])
def test_firewall_opens_postgresql_to_exactly_the_pg_hba_networks(inventory):
    hosts = rendered(inventory)
    assert hosts, f"{inventory.name}: no host in db_servers"
    for host, values in hosts.items():
        assert len(values["firewall"]) == 1, f"{inventory.name}/{host}: firewall_services needs one 'postgresql' entry"
        entry = values["firewall"][0]
        assert int(entry["port"]) == int(values["port"]), f"{inventory.name}/{host}: port differs"
        assert sorted(entry["sources"]) == sorted(values["hba"]), f"{inventory.name}/{host}: sources differ"


EXPORTERS = (
    "{{ {'firewall': firewall_services | selectattr('name', 'in', ['node_exporter', 'postgres_exporter', 'mtail'])"
    " | list,"
    " 'monitoring': groups['monitoring_servers'] | map('extract', hostvars) | map(attribute='lab_ip', default='')"
    " | list + groups['monitoring_servers'] | map('extract', hostvars) | map(attribute='mon_ip', default='') | list,"
    " 'postgres': exporters_postgres | default(false), 'listen': exporters_listen_address} | to_json }}"
)


@pytest.mark.parametrize("inventory", INVENTORIES, ids=[p.name for p in INVENTORIES])
def test_the_exporters_are_open_to_the_monitoring_hosts_alone(inventory):
    """On every firewalled host the monitoring host scrapes, each exporter's port is open, and open to
    exactly the monitoring hosts' addresses."""
    hosts = rendered(inventory, "db_servers:backup_servers", EXPORTERS)
    assert hosts
    for host, values in hosts.items():
        monitoring = sorted(f"{address}/32" for address in values["monitoring"] if address)
        assert monitoring, f"{inventory.name}: no monitoring host"
        # The exporters role's ports; mtail runs beside postgres_exporter.
        expected = {"node_exporter": 9100} | ({"postgres_exporter": 9187, "mtail": 3903} if values["postgres"] else {})
        opened = {entry["name"]: entry for entry in values["firewall"]}
        assert set(opened) == set(expected), f"{inventory.name}/{host}: exporter ports {sorted(opened)}"
        for name, port in expected.items():
            assert int(opened[name]["port"]) == port and sorted(opened[name]["sources"]) == monitoring, \
                f"{inventory.name}/{host}: {name} is open to {opened[name]['sources']}, not {monitoring}"
        assert values["listen"] not in ("", "0.0.0.0", "::"), f"{inventory.name}/{host}: exporters listen everywhere"
