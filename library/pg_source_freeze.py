#!/usr/bin/python
"""Ansible wrapper around pgharbor.migration.freeze."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_source_freeze
short_description: Make a database read-only for the cutover, and lift that exactly
description:
  - C(state=frozen) records the database's own C(default_transaction_read_only) setting in O(state_file), sets
    it C(on) (every new session of every role is read-only, C(nextval) included), and drains the open sessions;
    they get O(drain_seconds) to end, then are terminated.
  - C(state=thawed) puts back exactly the recorded setting (or none) and removes O(state_file). Without a state
    file there is no freeze of ours to lift and nothing changes, so running it twice is harmless.
  - Refuses to freeze when a role sets C(default_transaction_read_only) off for itself (it would keep writing),
    naming the statement that removes that setting.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment:
  - pgharbor_attributes
options:
  source:
    description: libpq connection string of the source database, as a superuser or its owner (C(postgres) over the local
      socket).
    type: str
    required: true
  source_password:
    description: Password for O(source), kept out of the connection string so that it is never logged.
    type: str
  state:
    description: Whether the database should be frozen or thawed.
    type: str
    choices: [frozen, thawed]
    default: frozen
  state_file:
    description: Where the previous setting is recorded (on the host the module runs on, mode 0600).
    type: path
    required: true
  drain_seconds:
    description: How long open sessions may take to end before they are terminated.
    type: float
    default: 30
requirements:
  - psycopg >= 3.1 where the module runs (Debian C(python3-psycopg))
"""

EXAMPLES = r"""
- name: Freeze the legacy database for the cutover
  pg_source_freeze:
    source: host=/var/run/postgresql dbname=buffer user=postgres
    state_file: /var/lib/pgharbor/migration/buffer.freeze.json
    drain_seconds: 30
  become: true
  become_user: postgres

- name: Lift the freeze exactly as it was
  pg_source_freeze:
    source: host=/var/run/postgresql dbname=buffer user=postgres
    state: thawed
    state_file: /var/lib/pgharbor/migration/buffer.freeze.json
  become: true
  become_user: postgres
"""

RETURN = r"""
database:
  description: The database frozen or thawed.
  returned: always
  type: str
  sample: buffer
previous:
  description: The database's default_transaction_read_only before the freeze (null when it had none).
  returned: always
  type: str
  sample: null
waited_seconds:
  description: How long open sessions were given to end.
  returned: when frozen now
  type: float
  sample: 2.4
terminated:
  description: Sessions terminated after O(drain_seconds).
  returned: always
  type: int
  sample: 1
"""

from dataclasses import asdict

import psycopg
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.migration.freeze import freeze, thaw
from ansible.module_utils.pgharbor.pg.conninfo import connection_options, conninfo


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **connection_options("source"),
            "state": {"type": "str", "choices": ["frozen", "thawed"], "default": "frozen"},
            "state_file": {"type": "path", "required": True},
            "drain_seconds": {"type": "float", "default": 30},
        },
        supports_check_mode=True,
    )
    p = module.params
    source = conninfo(p, "source")
    try:
        if p["state"] == "frozen":
            result = freeze(source, p["state_file"], drain_seconds=p["drain_seconds"], check_mode=module.check_mode)
        else:
            result = thaw(source, p["state_file"], check_mode=module.check_mode)
    except (PgharborError, psycopg.Error) as exc:
        module.fail_json(msg=str(exc).strip())
    module.exit_json(**asdict(result))


if __name__ == "__main__":
    main()
