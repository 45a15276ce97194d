#!/usr/bin/python
"""Ansible wrapper around pgharbor.tiers.report: one DB host across its tiers."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_backup_report
short_description: Put one DB host's tiers side by side, check that they agree, and estimate RPO and RTO
description:
  - Takes the reports of M(pg_backup_info) for C(tier1), C(tier2) and C(tier3) (any may be missing) and returns
    the combined health, a readable table and Prometheus metrics for node_exporter's textfile collector.
  - "The tiers agree when the same backup has the same SHA-256 everywhere, and a tier-1 backup older than a tier's
    newest (and newer than its oldest) is in that tier; what a tier misses is listed in RV(report.missing) with the
    command that ships it again."
  - RPO now is the age of the newest backup in any tier (and off the DB host); the last measured RTO is the restore
    time of the last restore drill (C(verify_backups.yml)).
  - "With O(timetravel), the time-travel layer too, per tier: each repository's newest full, differential and
    incremental backups, restorable window, RPO now (the newest archived WAL's age), last verify and last drill
    with its RTO; tier 2's pulled snapshots; C(pg_stat_archiver)'s failures. Its problems make the report unhealthy,
    and its figures are gauges C(pgharbor_timetravel_*) in the same Prometheus text."
  - Runs on the controller; never changes anything.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment:
  - pgharbor_attributes
options:
  host:
    description: The DB host the reports are about.
    type: str
    required: true
  health:
    description: The M(pg_backup_info) RV(pg_backup_info#module:health) of each tier, keyed C(tier1), C(tier2),
      C(tier3).
    type: dict
    required: true
  timetravel:
    description:
      - The time-travel layer of the host, keys C(db) (the DB host's C(pgharbor-timetravel status --json)) and
        C(tier2) (the host's C(timetravel) part of the backup server's C(pgharbor-backup-server status --json)),
        either may be empty. Without it, or with C(db) empty, the report has no time-travel part.
    type: dict
"""

EXAMPLES = r"""
- name: The tiers side by side
  pg_backup_report:
    host: "{{ inventory_hostname }}"
    health:
      tier1: "{{ tier1.health }}"
      tier3: "{{ tier3.health }}"
    timetravel:
      db: "{{ timetravel_status.stdout | from_json }}"
  delegate_to: localhost
  register: report
"""

RETURN = r"""
report:
  description: The combined report.
  returned: always
  type: dict
  contains:
    healthy:
      description: Every tier healthy and the tiers agree.
      type: bool
    problems:
      description: Each tier's problems (prefixed with the tier) and where the tiers disagree.
      type: list
      elements: str
    rpo_seconds:
      description: Age of the newest backup in any tier.
      type: int
    offsite_rpo_seconds:
      description: Age of the newest backup in tier 2 or 3.
      type: int
    rto_seconds:
      description: Restore time of the last restore drill.
      type: float
    missing:
      description: Per tier, the tier-1 backups it should hold but misses.
      type: dict
    timetravel:
      description: The time-travel layer per tier (C(tiers)), C(pg_stat_archiver)'s counters (C(archiver)), its
        C(problems) and C(healthy); null without O(timetravel).
      type: dict
    tiers:
      description: The tiers' reports as given.
      type: dict
  sample: {healthy: true, problems: [], rpo_seconds: 340, offsite_rpo_seconds: 380, rto_seconds: 4.2, missing: {}}
table:
  description: The report as lines of text.
  returned: always
  type: list
  elements: str
prometheus:
  description: The report as Prometheus text exposition (gauges labelled with host and tier).
  returned: always
  type: str
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.tiers.report import TIERS, host_report, prometheus, table, timetravel_report


def main() -> None:
    module = AnsibleModule(
        argument_spec={"host": {"type": "str", "required": True}, "health": {"type": "dict", "required": True},
                       "timetravel": {"type": "dict"}},
        supports_check_mode=True,
    )
    unknown = sorted(set(module.params["health"]) - set(TIERS))
    if unknown:
        module.fail_json(msg=f"health: unknown tier(s) {', '.join(unknown)}; use {', '.join(TIERS)}")
    tiers = {tier: r for tier, r in module.params["health"].items() if r}
    layer = module.params["timetravel"] or {}
    report = host_report(module.params["host"], tiers, datetime.now(timezone.utc),
                         timetravel_report(layer["db"], layer.get("tier2") or None) if layer.get("db") else None)
    module.exit_json(changed=False, report=report, table=table(report).splitlines(), prometheus=prometheus(report))


if __name__ == "__main__":
    main()
