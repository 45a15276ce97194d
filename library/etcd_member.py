#!/usr/bin/python
"""Ansible wrapper around pgharbor.ha.etcd.ensure_member: a member with no data made welcome by a running cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_member
short_description: Make a running etcd cluster expect a member that has no data yet
description:
  - For a member that is new, or rebuilt after it lost its data, before it starts with
    C(ETCD_INITIAL_CLUSTER_STATE=existing). Run it only for such a member.
  - The cluster's entry for the member it replaces (the same name or peer URL) is removed first, because a member
    that lost its data cannot come back under its old identity, whose log the others remember. Then the member is
    added. An entry added before and not started yet is the one wanted and is left as it is.
  - Needs a majority of the cluster running; etcd refuses the change otherwise.
  - In check mode nothing is changed; RV(changes) says what would be.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_etcd, pgharbor_attributes]
options:
  name:
    description: The member's name (its C(ETCD_NAME)).
    type: str
    required: true
  peer_url:
    description: The URL the other members reach it at (C(https://<address>:2380)).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: The cluster expects the rebuilt witness
  etcd_member:
    endpoint: https://10.0.0.11:2379
    ca: /etc/etcd/tls/ca.crt
    root_password: "{{ vault_etcd_root_password }}"
    name: witness
    peer_url: https://10.0.0.14:2380
"""

RETURN = r"""
changes:
  description: What changed, or would change in check mode, one line each.
  returned: always
  type: list
  elements: str
  sample: ["member witness at https://10.0.0.14:2380 removed (it lost its data)",
           "member witness at https://10.0.0.14:2380 added"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.ha.etcd import ETCD_OPTIONS, EtcdClient, ensure_member


def main() -> None:
    module = AnsibleModule(
        argument_spec={**ETCD_OPTIONS, "name": {"type": "str", "required": True},
                       "peer_url": {"type": "str", "required": True}},
        supports_check_mode=True,
    )
    p = module.params
    try:
        changes = ensure_member(EtcdClient(p["endpoint"], p["ca"]), p["root_password"], p["name"], p["peer_url"],
                                check_mode=module.check_mode)
    except PgharborError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(changes), changes=changes)


if __name__ == "__main__":
    main()
