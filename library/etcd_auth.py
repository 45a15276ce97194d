#!/usr/bin/python
"""Ansible wrapper around pgharbor.ha.etcd.ensure_auth: etcd's users, roles and authentication."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: etcd_auth
short_description: Bring etcd's users, roles and authentication to a declared state
description:
  - "Ensures a C(root) user with the C(root) role, and for each of O(users) a user with its password and a role of its
    own (named after the user) that may read and write its O(users[].prefixes) and nothing else. Users and roles not
    declared are removed. Then authentication is switched on, so that every client must log in."
  - Talks to one member's client URL through etcd's v3 JSON gateway over HTTPS, the API Patroni's C(etcd3) store uses;
    the host needs no etcd client library.
  - "A password is never read back (etcd keeps a hash): a declared password is right when etcd authenticates the user
    with it, and is set again otherwise."
  - In check mode nothing is changed; RV(changes) says what would be.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_etcd, pgharbor_attributes]
options:
  users:
    description: Every client user etcd should have besides C(root).
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The user's name; also the name of its role.
        type: str
        required: true
      password:
        description: The user's password.
        type: str
        required: true
      prefixes:
        description: Key prefixes the user may read and write, for example Patroni's namespace C(/service/).
        type: list
        elements: str
        required: true
"""

EXAMPLES = r"""
- name: Patroni may read and write its namespace, nothing else; authentication on
  etcd_auth:
    endpoint: https://10.0.0.11:2379
    ca: /etc/etcd/tls/ca.crt
    root_password: "{{ vault_etcd_root_password }}"
    users:
      - {name: patroni, password: "{{ vault_etcd_patroni_password }}", prefixes: [/service/]}
  run_once: true
"""

RETURN = r"""
changes:
  description: What changed, or would change in check mode, one line each; passwords are never shown.
  returned: always
  type: list
  elements: str
  sample: [role patroni added, "role patroni may readwrite /service/*", user patroni added, authentication enabled]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.ha.etcd import ETCD_OPTIONS, EtcdClient, EtcdUser, ensure_auth


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **ETCD_OPTIONS,
            "users": {"type": "list", "elements": "dict", "default": [], "options": {
                "name": {"type": "str", "required": True},
                "password": {"type": "str", "required": True, "no_log": True},
                "prefixes": {"type": "list", "elements": "str", "required": True, "no_log": False},
            }},
        },
        supports_check_mode=True,
    )
    p = module.params
    users = [EtcdUser(u["name"], u["password"], tuple(u["prefixes"])) for u in p["users"]]
    try:
        changes = ensure_auth(EtcdClient(p["endpoint"], p["ca"]), p["root_password"], users,
                              check_mode=module.check_mode)
    except PgharborError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(changes), changes=changes)


if __name__ == "__main__":
    main()
