"""Faults in the lab and the alerts they must raise, as the lab's tests
measure them (test_monitoring_server.py, test_alerts_slow.py): a fault is
broken, each of its alerts is waited for at the lab's receiver on mon1 (the
webhook Alertmanager notifies), the fault is healed, and each resolution is
waited for. The times are printed at the end of the run (conftest.py)."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from labhosts import lab_host

MON1, DB1, LEGACY, BACKUP1 = lab_host("mon1"), lab_host("db1"), lab_host("legacy"), lab_host("backup1")
PROMETHEUS, ALERTMANAGER = "http://10.89.42.14:9090", "http://10.89.42.14:9093"
RECEIVED = "/var/lib/lab-alert-receiver/alerts.jsonl"


def api(url: str):
    # From the controller: the lab machine is the operators' network, which
    # mon1's firewall lets in.
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


def query(expr: str) -> list[dict]:
    """An instant query's result: its series, each with labels (metric) and value."""
    return api(f"{PROMETHEUS}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")["data"]["result"]


def wait_for(what: str, probe, timeout: float, every: float = 2):
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f} s")
        time.sleep(every)


def run(host, command: str) -> str:
    out = host.run(command)
    assert out.rc == 0, f"{command}: {out.stderr}"
    return out.stdout


def notifications(since: float) -> list[dict]:
    """What the receiver got after `since` (Unix seconds): each alert of each
    notification, with the notification's arrival time."""
    out = MON1.run(f"cat {RECEIVED}")
    found = []
    for line in out.stdout.splitlines() if out.rc == 0 else []:
        entry = json.loads(line)
        if entry["received"] >= since:
            # The daily report's summary comes here too, without alerts.
            found += [dict(alert, received=entry["received"]) for alert in entry["notification"].get("alerts", [])]
    return found


@dataclass
class Fault:
    """Something broken in the lab, the alert it must raise and where, and how to heal it.
    `breaking` may return when the fault took effect (Unix seconds), if later than its call: the
    alerts' times are measured from then. The labels select the alert among others of its name;
    `also` names other alerts the same fault must raise on the same instance, with their labels.
    `within` is how long each alert may take to arrive, `resolved_within` to resolve."""
    name: str
    alertname: str
    instance: str
    breaking: Callable[[], float | None]
    healing: Callable[[], None]
    labels: dict = field(default_factory=dict)
    within: float = 300
    also: tuple[tuple[str, dict], ...] = ()
    resolved_within: float = 300

    def alerts(self) -> list[tuple[str, dict]]:
        return [(self.alertname, self.labels), *self.also]


def alert_at_receiver(alertname: str, wanted: dict, status: str, since: float) -> Callable[[], list[dict]]:
    wanted = {"alertname": alertname, **wanted}
    return lambda: [a for a in notifications(since) if a["status"] == status
                    and all(a["labels"].get(name) == value for name, value in wanted.items())]


def break_and_heal(fault: Fault) -> list[tuple[str, float, float]]:
    """Break, wait for each alert at the receiver, heal, wait for each resolution: per alert, the
    seconds each took to arrive. The fault is healed whatever happens."""
    called = time.time()
    fired = []
    try:
        broken = fault.breaking() or called
        for name, labels in fault.alerts():
            fired.append(wait_for(f"{name} {labels} at the receiver",
                                  alert_at_receiver(name, {"instance": fault.instance, **labels}, "firing", called),
                                  fault.within))
    finally:
        healed = time.time()
        fault.healing()
    measured = []
    for (name, labels), alerts in zip(fault.alerts(), fired, strict=True):
        assert alerts[0]["annotations"]["runbook"] == f"docs/MONITORING.md#{name.lower()}"
        resolved = wait_for(f"{name} resolved at the receiver",
                            alert_at_receiver(name, {"instance": fault.instance, **labels}, "resolved", healed),
                            fault.resolved_within)
        label = fault.name if not fault.also else f"{fault.name} ({name})"
        measured.append((label, alerts[0]["received"] - broken, resolved[0]["received"] - healed))
    return measured


def in_turn(*faults: Fault) -> list[tuple[str, float, float]]:
    """Faults that would mask each other, one after the other."""
    return [times for fault in faults for times in break_and_heal(fault)]
