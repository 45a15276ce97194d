#!/usr/bin/python
"""Ansible wrapper around pgharbor.tiers.options.prune_tier: retention applied to one tier."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_backup_retention
short_description: Apply a retention policy to one tier of backups, or say what it would remove and why
description:
  - "Decides from each backup's own start time (its manifest) which backups a policy keeps: grandfather-father-son
    (O(policy.hourly), O(policy.daily), O(policy.weekly), O(policy.monthly): how many of each period's newest) and/or
    O(policy.max_age_days). A backup is kept when any rule keeps it."
  - Always kept, whatever the policy; the newest backup, the newest verified one, one that a restore or a
    verification is reading (tiers 1 and 2).
  - "O(tier=tier1) and O(tier=tier2) work on a directory on the host (the DB host's own, the backup server's store for
    O(host)); their timers already apply the role's policy after each run, so this is for a dry run or a one-off
    policy. O(tier=tier3) works on a bucket with credentials that may list and delete (run it on the controller; the
    DB hosts' keys may only put objects)."
  - In check mode nothing is removed; RV(decisions) says what would go and why.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_tier, pgharbor_attributes]
options:
  policy:
    description: The retention policy; default the role's (C(pg_backup_retention), the backup server's for O(host)).
    type: dict
"""

EXAMPLES = r"""
- name: What tier 3's retention would remove (run with --check), or remove it
  pg_backup_retention:
    tier: tier3
    s3: "{{ pg_backup_tier3 }}"
    policy: {daily: 30, monthly: 12}
    s3_access_key_id: "{{ vault_backup_retention_access_key_id }}"
    s3_secret_access_key: "{{ vault_backup_retention_secret_access_key }}"
  delegate_to: localhost
"""

RETURN = r"""
decisions:
  description: One decision per backup, newest first, with C(id), C(started), C(keep) and the C(reasons).
  returned: always
  type: list
  elements: dict
  sample: [{id: buffer-20261202T110000Z, keep: true, reasons: [newest backup, daily 1/30]},
           {id: buffer-20261001T110000Z, keep: false, reasons: ["outside the policy (30 daily, 12 monthly)"]}]
removed:
  description: Ids removed (in check mode, that would be removed).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.tiers.options import TIER_REQUIRED_IF, prune_tier, tier_options


def main() -> None:
    module = AnsibleModule(
        argument_spec={**tier_options(), "policy": {"type": "dict"}},
        supports_check_mode=True,
        required_if=TIER_REQUIRED_IF,
    )
    try:
        decisions = prune_tier(module.params, module.check_mode)
    except PgharborError as exc:
        module.fail_json(msg=f"{module.params['tier']}: {exc}")
    removed = [d.id for d in decisions if not d.keep]
    module.exit_json(changed=bool(removed), decisions=[d.as_dict() for d in decisions], removed=removed)


if __name__ == "__main__":
    main()
