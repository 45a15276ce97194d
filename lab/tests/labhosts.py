"""The lab's hosts as the tests reach them: inventories/lab/hosts.yml names
each host's podman container in ansible_host."""

from pathlib import Path

import testinfra
import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "lab"


def _containers() -> dict[str, str]:
    groups = yaml.safe_load((INVENTORY / "hosts.yml").read_text(encoding="utf-8"))["all"]["children"]
    # a host in several groups (db1: DB server and etcd member) is described in one, listed bare in the others
    return {name: host["ansible_host"] for group in groups.values() for name, host in group["hosts"].items() if host}


CONTAINERS = _containers()


def lab_host(name: str):
    """A lab host by its inventory name (db1, legacy, ...), as podman://<container>."""
    return testinfra.get_host(f"podman://{CONTAINERS[name]}")
