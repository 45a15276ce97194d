"""Shared by every scenario's testinfra verify.

Testinfra's ansible backend runs one ad-hoc ansible command per check, which
is several times slower than talking to podman directly. The scenario's
instances are podman containers named after their inventory hosts, so each
host is reached as podman://<name>.
"""

import os

import yaml


def _instances() -> list[str]:
    with open(os.environ["MOLECULE_INVENTORY_FILE"], encoding="utf-8") as handle:
        inventory = yaml.safe_load(handle)

    def hosts(group: dict) -> list[str]:
        found = list((group.get("hosts") or {}).keys())
        for child in (group.get("children") or {}).values():
            found += hosts(child or {})
        return found

    return sorted(set(hosts(inventory["all"])))


def pytest_configure(config):
    if os.environ.get("MOLECULE_INVENTORY_FILE") and not config.option.hosts:
        config.option.hosts = ",".join(f"podman://{name}" for name in _instances())
        config.option.connection = None
        config.option.ansible_inventory = None
