"""pgharbor's alert rules (roles/monitoring_server/files/pgharbor.rules.yml)
keep their promises: each has a severity, a summary, a description and a
runbook anchor that docs/MONITORING.md really has; each is proved to fire by
a promtool unit test in tests/rules/ (make rules runs them); each threshold a
rule reads is one the role renders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "roles" / "monitoring_server" / "files" / "pgharbor.rules.yml"
DOC = REPO / "docs" / "MONITORING.md"
ALERTS = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"] if "alert" in rule]


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)}


def _fired_in_tests() -> set[str]:
    fired = set()
    for path in (REPO / "tests" / "rules").glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    fired.add(case["alertname"])
    return fired


def test_there_are_alerts():
    assert len(ALERTS) >= 10


@pytest.mark.parametrize("rule", ALERTS, ids=[r["alert"] for r in ALERTS])
def test_alert_is_complete_and_documented(rule):
    assert rule["labels"]["severity"] in {"critical", "warning"}
    notes = rule["annotations"]
    assert notes.get("summary") and notes.get("description")
    page, _, anchor = notes["runbook"].partition("#")
    assert page == "docs/MONITORING.md"
    assert anchor == rule["alert"].lower(), "the runbook anchor is the alert's name"
    assert anchor in _anchors(DOC.read_text()), f"docs/MONITORING.md has no section for {rule['alert']}"


@pytest.mark.parametrize("rule", ALERTS, ids=[r["alert"] for r in ALERTS])
def test_alert_has_a_unit_test_that_fires_it(rule):
    assert rule["alert"] in _fired_in_tests(), f"no test in tests/rules/ expects {rule['alert']} to fire"


def test_every_threshold_a_rule_reads_is_rendered():
    rendered = set(yaml.safe_load((REPO / "roles" / "monitoring_server" / "vars" / "main.yml").read_text())
                   ["__monitoring_server_threshold_defaults"])
    used = set(re.findall(r"pgharbor:threshold:(\w+)", RULES.read_text()))
    assert used <= rendered, used - rendered
