#!/usr/bin/python
"""Ansible wrapper around pgharbor.tiers.options.tier_report: one tier's backups and health."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_backup_info
short_description: Report the backups of one tier (DB host, backup server or S3 bucket) and their health
description:
  - "O(tier=tier1): the DB host's own backups (the directory in the pg_backup role's settings), the last run with each
    tier's last shipment, and the last successful verification (restore drill)."
  - "O(tier=tier2): on the backup server, the backups stored for the DB host O(host) (role backup_server)."
  - "O(tier=tier3): the backups in an S3 bucket, read with O(s3) and credentials that may list and read (run it on the
    controller; the DB hosts' own S3 keys may only put objects)."
  - Every tier gives the same report (count, size, newest and oldest, age of the newest, every backup's id and
    SHA-256) so that playbooks/status.yml can show the tiers side by side and check that they agree
    (M(pg_backup_report)).
  - Never changes anything; an unhealthy tier is reported in RV(health.problems), not as a failure.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_tier, pgharbor_attributes]
options:
  max_age_hours:
    description: The newest backup may not be older than this; default the role's setting (tiers 1, 2), else 2.
    type: float
"""

EXAMPLES = r"""
- name: Tier 1 on the DB host
  pg_backup_info:
  become: true
  become_user: postgres
  register: tier1

- name: Tier 2 on the backup server
  pg_backup_info:
    tier: tier2
    host: db1
  become: true
  become_user: pgharbor

- name: Tier 3, from the controller
  pg_backup_info:
    tier: tier3
    s3: "{{ pg_backup_tier3 }}"
    s3_access_key_id: "{{ vault_backup_reader_access_key_id }}"
    s3_secret_access_key: "{{ vault_backup_reader_secret_access_key }}"
  delegate_to: localhost
"""

RETURN = r"""
health:
  description: The tier's report.
  returned: always
  type: dict
  contains:
    where:
      description: The directory or C(s3://bucket/prefix).
      type: str
    count:
      description: Complete backups (a manifest and its artefact).
      type: int
    bytes:
      description: Their total size.
      type: int
    newest:
      description: Id of the newest backup.
      type: str
    newest_age_seconds:
      description: Age of the newest backup (from its manifest's start time).
      type: int
    oldest:
      description: Id of the oldest backup.
      type: str
    backups:
      description: Every backup, oldest first, with C(id), C(started), C(size), C(sha256).
      type: list
      elements: dict
    last_run:
      description: C(tier1) and C(tier2) only, the last run's record (for C(tier1) with C(shipping) per tier).
      type: dict
    last_verification:
      description: C(tier1) only, the last verification that passed (level, seconds, restore_seconds).
      type: dict
    retention:
      description: C(tier2) only, the backup server's retention for this host.
      type: dict
    problems:
      description: What makes the tier unhealthy, each naming the setting or the fix.
      type: list
      elements: str
    healthy:
      description: No problem.
      type: bool
  sample: {where: /var/backups/pgharbor, count: 24, newest: buffer-20261202T110000Z, newest_age_seconds: 340,
           healthy: true, problems: []}
healthy:
  description: The same as RV(health.healthy).
  returned: always
  type: bool
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.tiers.options import TIER_REQUIRED_IF, tier_options, tier_report


def main() -> None:
    module = AnsibleModule(
        argument_spec={**tier_options(), "max_age_hours": {"type": "float"}},
        supports_check_mode=True,
        required_if=TIER_REQUIRED_IF,
    )
    try:
        health = tier_report(module.params, datetime.now(timezone.utc))
    except PgharborError as exc:
        module.fail_json(msg=f"{module.params['tier']}: {exc}")
    module.exit_json(changed=False, health=health, healthy=health["healthy"])


if __name__ == "__main__":
    main()
