"""Running real ansible-playbook from the tests: one custom module on this
machine (its result read from the json callback), or a playbook against an
inventory as an operator runs it (Molecule's verify, the lab's tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def run_module(repo: Path, tmp_path: Path, module: str, args: dict, check: bool = False) -> tuple[int, dict, str]:
    """Run one module task; its result comes from the json callback."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False,
                                         "tasks": [{"name": "run", module: args}]}]))
    argv = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
            json.dumps({"ansible_python_interpreter": sys.executable}), str(playbook)]
    if check:
        argv.append("--check")
    done = subprocess.run(argv, cwd=repo, capture_output=True, text=True, check=False,
                          env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"})
    result = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return done.returncode, result, done.stdout + done.stderr


PlaybookRunner = Callable[..., subprocess.CompletedProcess]


def playbook_runner(repo: Path, inventory: Path) -> PlaybookRunner:
    """run(playbook, *options, extra_vars=None): ansible-playbook with the repository's ansible.cfg against
    the inventory, uncoloured (the tests read its output); returns the finished process."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(repo / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    # Molecule forces colour for its own output.
    env.pop("ANSIBLE_FORCE_COLOR", None)

    def run(playbook: Path, *args: str, extra_vars: dict | None = None) -> subprocess.CompletedProcess:
        command = [ANSIBLE_PLAYBOOK, "-i", str(inventory), str(playbook), *args]
        if extra_vars:
            command += ["-e", json.dumps(extra_vars)]
        return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False)

    return run
