"""The project's Ansible conventions, checked on the tree itself: every role
documents every variable it has, names them after itself, and every Molecule
scenario takes its shared settings from one place."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = sorted(p for base in ("roles", "lab/roles") for p in (REPO / base).iterdir() if p.is_dir())
SCENARIOS = sorted(p for p in (REPO / "molecule").iterdir() if (p / "molecule.yml").exists())


def load(path: Path):
    return yaml.safe_load(path.read_text()) if path.exists() else None


def role_ids(roles):
    return [r.name for r in roles]


def test_there_are_roles_and_scenarios():
    assert ROLES, "no role found"
    assert SCENARIOS, "no Molecule scenario found"


@pytest.mark.parametrize("role", ROLES, ids=role_ids(ROLES))
def test_role_has_argument_specs(role):
    specs = load(role / "meta" / "argument_specs.yml")
    assert specs, f"{role.name}: meta/argument_specs.yml is missing"
    main = specs["argument_specs"]["main"]
    assert main.get("short_description"), f"{role.name}: argument spec without short_description"


@pytest.mark.parametrize("role", ROLES, ids=role_ids(ROLES))
def test_defaults_are_prefixed_documented_and_agree(role):
    defaults = load(role / "defaults" / "main.yml") or {}
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"].get("options", {})
    for name, value in defaults.items():
        assert name.startswith(f"{role.name}_"), f"{role.name}: variable {name} lacks the role prefix"
        assert name in options, f"{role.name}: {name} is not in meta/argument_specs.yml"
        assert options[name].get("description"), f"{role.name}: {name} has no description"
        assert options[name].get("default") == value, (
            f"{role.name}: default of {name} differs between defaults/main.yml and argument_specs"
        )
    for name in options:
        assert name.startswith(f"{role.name}_"), f"{role.name}: option {name} lacks the role prefix"


@pytest.mark.parametrize("role", ROLES, ids=role_ids(ROLES))
def test_role_readme_has_idempotence_and_every_variable(role):
    readme = role / "README.md"
    assert readme.exists(), f"{role.name}: README.md is missing"
    text = readme.read_text()
    assert "## Idempotence" in text, f"{role.name}: README has no Idempotence section"
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"].get("options", {})
    undocumented = [name for name in options if f"`{name}`" not in text]
    assert not undocumented, f"{role.name}: README does not describe {undocumented}"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_takes_shared_settings(scenario):
    config = load(scenario / "molecule.yml")
    for key in ("driver", "verifier", "dependency"):
        assert key not in config, f"{scenario.name}: '{key}' belongs in .config/molecule/config.yml"
    assert config.get("platforms"), f"{scenario.name}: no platforms"
    assert any((scenario / "tests").glob("test_*.py")), f"{scenario.name}: no testinfra verify"


def test_every_product_role_is_converged_by_a_scenario():
    """By a scenario's converge, by a scenario of its own name, or by the lab's
    tests of its own name (migration: lab/tests/test_migration.py drives the
    playbooks that run the role, on the lab make lab-test brings up)."""
    converged = " ".join((s / "converge.yml").read_text() for s in SCENARIOS if (s / "converge.yml").exists())
    lab_tests = {t.stem.removeprefix("test_") for t in (REPO / "lab" / "tests").glob("test_*.py")}
    names = {s.name for s in SCENARIOS} | lab_tests
    missing = [r.name for r in ROLES
               if r.parent == REPO / "roles" and f"role: {r.name}\n" not in converged and r.name not in names]
    assert not missing, f"roles no Molecule scenario or lab test converges: {missing}"


def test_lab_hosts_have_unique_addresses_in_the_lab_subnet():
    inventory = load(REPO / "inventories" / "lab" / "hosts.yml")
    subnet = ipaddress.ip_network(load(REPO / "inventories" / "lab" / "group_vars" / "all" / "main.yml")["lab_subnet"])
    # a host in several groups (db1: DB server and etcd member) is described once, listed bare elsewhere
    listed = {name for group in inventory["all"]["children"].values() for name in group["hosts"]}
    hosts = {
        name: spec for group in inventory["all"]["children"].values() for name, spec in group["hosts"].items() if spec
    }
    assert set(hosts) == listed, f"hosts listed but described nowhere: {listed - set(hosts)}"
    assert set(hosts) >= {"legacy", "db1", "db2", "backup1", "s3"}
    addresses = [ipaddress.ip_address(spec["lab_ip"]) for spec in hosts.values()]
    assert len(set(addresses)) == len(addresses), "two lab hosts share an address"
    assert all(a in subnet for a in addresses), "a lab host lies outside lab_subnet"
    assert all(spec["ansible_host"] == f"pgharbor-{name}" for name, spec in hosts.items())
