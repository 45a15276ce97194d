#!/usr/bin/python
"""Ansible wrapper around pgharbor.migration.preflight."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_preflight
short_description: Check, read-only, that a database can be migrated to a target server
description:
  - Connects to both ends and reports a verdict (C(ok), C(warn), C(fail)) per check, each problem with the
    setting or command that fixes it.
  - "Checks: reachability and TLS of both ends (the target must verify the server certificate); server
    versions (target major at least the source's); encoding, locale and collation provider; extensions used on
    the source and available (and creatable) on the target; the target database exists and is empty; free disk
    on the target against the source's size; owners and grantees on the source against the target's
    least-privilege users; tables without a primary key; row-level security the copying role cannot bypass;
    large objects; unlogged tables; C(reg*) and C(oid) columns."
  - Fails when a check fails. Nothing is written on either end, so check mode runs the same checks.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_connection, pgharbor_attributes]
options:
  target_role:
    description: The target's owner role the migration creates objects as (the migrating user must be a member).
    type: str
  target_free_bytes:
    description: Free bytes on the target's data directory; without it the disk check warns.
    type: int
  allow_nonempty_target:
    description: Accept a target database that already holds tables (a warning instead of a failure).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Check that buffer can move to db1
  pg_preflight:
    source: host=/var/run/postgresql dbname=buffer user=postgres
    target: host=db1 dbname=buffer user=migrator sslmode=verify-full sslrootcert=/var/lib/pgharbor/migration/ca.crt
    target_password: "{{ vault_migrator_password }}"
    target_role: buffer_owner
    target_free_bytes: "{{ target_df.stdout | int }}"
  become: true
  become_user: postgres
"""

RETURN = r"""
ok:
  description: No check failed.
  returned: always
  type: bool
  sample: true
source_bytes:
  description: Size of the source database (pg_database_size).
  returned: always
  type: int
  sample: 14812019
checks:
  description: Every check with its verdict, what was found, and the fix for a problem.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: target TLS, verdict: ok, detail: "TLSv1.3 TLS_AES_256_GCM_SHA384, server certificate verified", fix: ""}
    - {name: primary keys, verdict: warn, detail: "1 tables without a primary key (app.nokey)...",
       fix: add a primary key on the source where the data has one}
summary:
  description: One line per check, for people.
  returned: always
  type: list
  elements: str
  sample: ["OK   server versions: source 15.8, target 15.8"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.migration.preflight import preflight
from ansible.module_utils.pgharbor.pg.conninfo import connection_options, conninfo


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **connection_options("source", "target"),
            "target_role": {"type": "str"},
            "target_free_bytes": {"type": "int"},
            "allow_nonempty_target": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    report = preflight(conninfo(p, "source"), conninfo(p, "target"), target_role=p["target_role"],
                       target_free_bytes=p["target_free_bytes"], allow_nonempty_target=p["allow_nonempty_target"])
    result = {"changed": False, **report.as_dict(), "summary": report.summary().splitlines()}
    for check in report.checks:
        if check.verdict == "warn":
            module.warn(f"{check.name}: {check.detail} -> {check.fix}")
    if not report.ok:
        module.fail_json(msg="preflight failed: " + "; ".join(f"{c.name}: {c.detail} -> {c.fix}"
                                                             for c in report.failed), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
