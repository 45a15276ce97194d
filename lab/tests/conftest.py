"""The lab as a test subject: lab/test-lab.sh runs these after `make lab`,
against the lab's own containers and inventory."""

import pytest
from ansiblerun import playbook_runner
from labhosts import INVENTORY, REPO


@pytest.fixture
def run_playbook():
    """run_playbook("migrate", "--check", extra_vars={...}) runs playbooks/migrate.yml against the lab,
    as `bin/play lab migrate --check` does; returns the finished process (output in .stdout)."""
    run = playbook_runner(REPO, INVENTORY)
    return lambda playbook, *args, **kwargs: run(REPO / "playbooks" / f"{playbook}.yml", *args, **kwargs)
