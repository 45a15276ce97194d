"""execution-environment.yml builds the controller side the tests run with:
ansible-builder accepts it (a real `ansible-builder create`, which writes
the build context without pulling an image), its collections are the
versions installed here and cover every collection the roles and playbooks
name, and its Python pins are requirements.txt's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFINITION = yaml.safe_load((REPO / "execution-environment.yml").read_text())
COLLECTIONS = yaml.safe_load((REPO / "collections-requirements.yml").read_text())["collections"]
# Used by the lab and the Molecule scenarios only, never on a controller.
LAB_ONLY = {"containers.podman"}


def test_ansible_builder_accepts_the_definition(tmp_path):
    done = subprocess.run([str(BIN / "ansible-builder"), "create", "-f", str(REPO / "execution-environment.yml"),
                           "-c", str(tmp_path / "context")], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert "community.postgresql" in (tmp_path / "context" / "_build" / "requirements.yml").read_text()


def test_collections_are_the_installed_versions():
    done = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "list", "--format", "json"], cwd=REPO,
                          capture_output=True, text=True, check=True)
    installed = {name: info["version"] for path in json.loads(done.stdout).values() for name, info in path.items()}
    for collection in COLLECTIONS:
        assert installed.get(collection["name"]) == collection["version"], collection


def test_every_collection_the_project_uses_is_listed():
    used = set()
    for path in [*REPO.glob("roles/*/tasks/*.yml"), *REPO.glob("roles/*/handlers/*.yml"), *REPO.glob("playbooks/*.yml"),
                 *REPO.glob("roles/*/templates/*.j2"), *REPO.glob("roles/*/vars/*.yml")]:
        used |= {m for m in re.findall(r"\b([a-z_]+\.[a-z_]+)\.[a-z_]+\b", path.read_text())
                 if m.split(".")[0] in ("ansible", "community", "containers") and m != "ansible.builtin"}
    assert used, "FQCN module names are expected in the roles"
    assert used - LAB_ONLY <= {c["name"] for c in COLLECTIONS}, used


def test_python_pins_are_the_requirements():
    pins = dict(re.findall(r"^([A-Za-z0-9_.\[\]-]+)==(\S+)$", (REPO / "requirements.txt").read_text(), re.M))
    pins |= dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO / "requirements.lock").read_text(), re.M))
    wanted = [*DEFINITION["dependencies"]["python"], DEFINITION["dependencies"]["ansible_core"]["package_pip"]]
    for requirement in wanted:
        name, version = requirement.split("==")
        assert pins.get(name) == version, f"{requirement}: requirements.txt pins {pins.get(name)}"
