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


MEASURED: list[tuple[str, float, float]] = []


@pytest.fixture
def measured():
    """Append (fault, seconds until the alert arrived, seconds until it resolved after the fix)."""
    return MEASURED


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("alerts measured in the lab")
        for fault, fired, resolved in MEASURED:
            terminalreporter.write_line(f"{fault}: alert at the receiver after {fired:.0f} s, "
                                        f"resolved {resolved:.0f} s after the fix")
