#!/usr/bin/python
"""Ansible wrapper around pgharbor.ha.patroni's planned switchover."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: patroni_switchover
short_description: Hand a Patroni cluster's primary over to a standby, checked first
description:
  - "A planned switchover, for patching or moving the primary: the leader hands over to a running standby
    (O(candidate), or the only standby), which Patroni promotes; the old leader follows it as a standby."
  - "Refused before anything happens when there is no leader, the standby is not running, or its replay is more
    than O(max_lag_bytes) behind what the leader has written (its promotion would first wait for that replay)."
  - Waits until the candidate is the primary and the old leader runs as its standby.
  - In check mode only the checks run; the switchover is reported as a change that would happen.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_patroni, pgharbor_attributes]
options:
  candidate:
    description: The standby to take over; may be left out when the cluster has exactly one.
    type: str
  max_lag_bytes:
    description: How far the candidate's replay may be behind the leader's written WAL.
    type: int
    default: 1048576
  timeout:
    description: Seconds to wait for the switchover to finish.
    type: int
    default: 60
"""

EXAMPLES = r"""
- name: Move the primary to the standby before patching the primary's host
  patroni_switchover:
    api_url: https://10.0.0.11:8008
    ca: /etc/postgresql/15/main/tls/ca.crt
    api_password: "{{ vault_patroni_api_password }}"
    max_lag_bytes: 1048576
  run_once: true
"""

RETURN = r"""
leader:
  description: The leader before the switchover.
  returned: always
  type: str
  sample: db1
candidate:
  description: The standby that takes over.
  returned: always
  type: str
  sample: db2
replay_lag_bytes:
  description: How far the candidate's replay was behind when it was checked.
  returned: always
  type: int
  sample: 0
seconds:
  description: Seconds from the request until the candidate was the primary and the old leader followed it.
  returned: when the switchover was made (not in check mode)
  type: float
  sample: 7.1
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.ha.patroni import PATRONI_OPTIONS, PatroniClient, plan_switchover, switch_over


def main() -> None:
    module = AnsibleModule(
        argument_spec={**PATRONI_OPTIONS,
                       "candidate": {"type": "str"},
                       "max_lag_bytes": {"type": "int", "default": 1048576},
                       "timeout": {"type": "int", "default": 60}},
        supports_check_mode=True,
    )
    p = module.params
    client = PatroniClient(p["api_url"], p["ca"], p["api_user"], p["api_password"])
    try:
        plan = plan_switchover(client, p["candidate"], p["max_lag_bytes"])
        result = {"leader": plan.leader.name, "candidate": plan.candidate.name, "replay_lag_bytes": plan.replay_lag}
        if not module.check_mode:
            result["seconds"] = round(switch_over(client, plan, timeout=p["timeout"]), 2)
    except PgharborError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
