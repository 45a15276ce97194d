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


def rendered(inventory: Path) -> dict[str, dict]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run(
        [ANSIBLE, "-i", str(inventory), "db_servers", "-o", "-m", "ansible.builtin.debug", "-a", f"msg={EXPRESSION}"],
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
