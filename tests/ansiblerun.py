"""Running one custom module through real ansible-playbook on this machine,
its result read from the json callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
