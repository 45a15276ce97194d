"""The example environments and the one command that runs a playbook on
one of them (bin/play, behind `make <playbook> ENV=<env>`): every secret an
inventory uses is listed in its vault example, no vault file is committed
in clear, and production asks before anything runs, through real
ansible-playbook (--list-hosts: nothing is contacted)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("staging", "production")
VAULT_VARIABLE = re.compile(r"\bvault_[a-z0-9_]+")


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


@pytest.mark.parametrize("name", ENVIRONMENTS)
def test_every_secret_the_inventory_uses_is_in_its_vault_example(name):
    inventory = REPO / "inventories" / name
    example = (inventory / "group_vars" / "all" / "vault.yml.example").read_text()
    listed = set(re.findall(r"^(vault_[a-z0-9_]+):", example, re.M))
    used = set()
    for path in inventory.rglob("*.yml"):
        used |= set(VAULT_VARIABLE.findall(path.read_text()))
    assert used - listed == set(), f"{name}: add these to vault.yml.example"
    assert listed - used == set(), f"{name}: vault.yml.example lists secrets nothing uses"


def test_no_vault_file_is_in_clear():
    vaults = [p for p in (REPO / "inventories").rglob("vault.yml")]
    assert vaults, "the lab's vault at least"
    for path in vaults:
        assert path.read_text().startswith("$ANSIBLE_VAULT;"), f"{path} is not encrypted: ansible-vault encrypt it"


def play(*args: str, stdin: str | None = None, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "bin" / "play"), *args], cwd=REPO, env={**env(), **extra}, input=stdin,
                          capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture
def vault_password(tmp_path) -> str:
    path = tmp_path / "vault-password"
    path.write_text("not-a-real-one\n")
    return str(path)


def test_an_unknown_environment_or_playbook_is_named_with_the_choices():
    done = play("prod", "status")
    assert done.returncode == 2 and "there is no inventories/prod" in done.stderr
    assert "environments: lab production staging" in done.stderr
    done = play("staging", "statuss")
    assert done.returncode == 2 and "there is no playbooks/statuss.yml" in done.stderr and " status " in done.stderr


def test_staging_runs_without_asking(vault_password):
    done = play("staging", "status", "--list-hosts", VAULT_PASSWORD_FILE=vault_password)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "db1.staging.example.com" in done.stdout


def test_production_without_a_terminal_refuses_and_runs_nothing(vault_password):
    done = play("production", "site", "--list-hosts", VAULT_PASSWORD_FILE=vault_password)
    assert done.returncode == 3 and "CONFIRM=yes" in done.stderr
    assert "db1.prod.example.com" not in done.stdout


def test_production_runs_when_confirmed_or_only_checking(vault_password):
    done = play("production", "site", "--list-hosts", VAULT_PASSWORD_FILE=vault_password, CONFIRM="yes")
    assert done.returncode == 0 and "db1.prod.example.com" in done.stdout, done.stdout + done.stderr
    done = play("production", "site", "--check", "--list-hosts", VAULT_PASSWORD_FILE=vault_password)
    assert done.returncode == 0 and "db1.prod.example.com" in done.stdout, done.stdout + done.stderr


def typed(answer: str, vault_password: str) -> tuple[int, str]:
    """bin/play production on a terminal, answering its question."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        os.execve(str(REPO / "bin" / "play"), ["play", "production", "status", "--list-hosts"],
                  {**env(), "VAULT_PASSWORD_FILE": vault_password})
    output = b""
    answered = False
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"Type 'production' to go on:" in output:
            os.write(fd, answer.encode() + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_production_on_a_terminal_runs_only_when_its_name_is_typed(vault_password):
    code, output = typed("yes", vault_password)
    assert code == 3 and "not confirmed: nothing was run" in output and "db1.prod.example.com" not in output
    code, output = typed("production", vault_password)
    assert code == 0 and "db1.prod.example.com" in output, output
