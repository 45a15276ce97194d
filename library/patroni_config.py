#!/usr/bin/python
"""Ansible wrapper around pgharbor.ha.patroni.ensure_dynamic_config: the settings every member shares."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: patroni_config
short_description: Bring a Patroni cluster's shared settings to a declared state
description:
  - "Patroni keeps the settings every member must agree on (C(ttl), C(loop_wait), C(synchronous_mode),
    C(maximum_lag_on_failover), PostgreSQL's C(max_connections) and the like) in etcd, not in each member's file:
    the file's C(bootstrap.dcs) is only read when the cluster is created. This module compares the declared
    O(config) with what the cluster holds and sends only the difference (C(PATCH /config)); keys not declared are
    left alone."
  - Values compare as PostgreSQL would read them (C(100) and C("100"), C(on) and C(true) are one value).
  - A changed PostgreSQL setting that only a restart applies is then flagged C(pending_restart) by each member.
  - In check mode nothing is changed; RV(changes) says what would be.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_patroni, pgharbor_attributes]
options:
  config:
    description: The shared settings, shaped as Patroni's dynamic configuration.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Synchronous replication, and 200 connections on every member
  patroni_config:
    api_url: https://10.0.0.11:8008
    ca: /etc/postgresql/15/main/tls/ca.crt
    api_password: "{{ vault_patroni_api_password }}"
    config:
      synchronous_mode: true
      postgresql:
        parameters: {max_connections: 200}
  run_once: true
"""

RETURN = r"""
changes:
  description: "Each changed setting as C(path: old -> new), or what would change in check mode."
  returned: always
  type: list
  elements: str
  sample: ["postgresql.parameters.max_connections: 100 -> 200", "synchronous_mode: false -> true"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.ha.patroni import PATRONI_OPTIONS, PatroniClient, ensure_dynamic_config


def main() -> None:
    module = AnsibleModule(
        argument_spec={**PATRONI_OPTIONS, "config": {"type": "dict", "required": True}},
        supports_check_mode=True,
    )
    p = module.params
    client = PatroniClient(p["api_url"], p["ca"], p["api_user"], p["api_password"])
    try:
        changes = ensure_dynamic_config(client, p["config"], check_mode=module.check_mode)
    except PgharborError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(changes), changes=changes)


if __name__ == "__main__":
    main()
