#!/usr/bin/python
"""Ansible wrapper around pgharbor.migration.migrate (with preflight and freeze)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_migrate
short_description: Copy a PostgreSQL database into an empty database on another server
description:
  - Runs the preflight checks (see M(pg_preflight)) and stops when one fails.
  - With O(freeze_source), freezes the source first (see M(pg_source_freeze)), so that nothing changes on the
    source between the copy and the cutover.
  - Copies under one exported snapshot of the source, held open for the whole copy. The schema travels with
    C(pg_dump)/C(pg_restore) in sections (pre-data before the rows; indexes, constraints and triggers after
    them), created by O(target_role) so the target's owner role owns every object; privileges are not copied.
  - Rows travel as C(COPY TO STDOUT) streamed into C(COPY FROM STDIN), binary where every column type is built in,
    text otherwise and as the fallback, O(jobs) tables at a time, largest first, with fixed session settings on
    both ends. Then large objects (OIDs kept), sequences (values as seen by the snapshot), materialized views,
    post-data, C(ANALYZE).
  - Progress (phase, tables, bytes, throughput, ETA) goes to O(status_file) while it runs, for async polling.
  - The target database's comment says whether it holds a partial or a complete migration.
  - Check mode runs the preflight only.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_connection, pgharbor_attributes]
options:
  target_role:
    description: The target's owner role (the target user must be a member); it owns every migrated object.
    type: str
  jobs:
    description: Tables copied in parallel; default one per CPU, at least 2.
    type: int
  status_file:
    description: Progress file (JSON), rewritten at most once a second.
    type: path
  freeze_source:
    description: Freeze the source before copying (read-only for every role, sessions drained, state recorded).
    type: bool
    default: false
  freeze_state_file:
    description: Where the freeze records the source's previous state; required with O(freeze_source).
    type: path
  drain_seconds:
    description: How long the source's open sessions may take to end before they are terminated.
    type: float
    default: 30
  target_free_bytes:
    description: Free bytes on the target's data directory, for the preflight's disk check.
    type: int
  allow_nonempty_target:
    description: Migrate into a target database that already holds tables. Existing rows stay; the copy fails
      on the first table that already exists.
    type: bool
    default: false
notes:
  - "Long migrations run with C(async) and C(poll: 0); poll with M(ansible.builtin.async_status) and read
    O(status_file) for progress (C(playbooks/migrate.yml) does)."
"""

EXAMPLES = r"""
- name: Freeze buffer on the legacy host and copy it to db1
  pg_migrate:
    source: host=/var/run/postgresql dbname=buffer user=postgres
    target: host=db1 dbname=buffer user=migrator sslmode=verify-full sslrootcert=/var/lib/pgharbor/migration/ca.crt
    target_password: "{{ vault_migrator_password }}"
    target_role: buffer_owner
    freeze_source: true
    freeze_state_file: /var/lib/pgharbor/migration/buffer.freeze.json
    status_file: /var/lib/pgharbor/migration/status.json
  become: true
  become_user: postgres
  async: 14400
  poll: 0
  register: copy_job
"""

RETURN = r"""
preflight:
  description: The preflight report (see M(pg_preflight)).
  returned: always
  type: dict
  sample: {ok: true, source_bytes: 14812019, checks: []}
freeze:
  description: What the freeze did (previous setting, sessions terminated).
  returned: when O(freeze_source) and not in check mode
  type: dict
  sample: {changed: true, database: buffer, previous: null, waited_seconds: 0.0, terminated: 0}
tables:
  description: Per table, rows, bytes of the COPY stream, seconds and format (binary or text).
  returned: success, not in check mode
  type: list
  elements: dict
  sample: [{table: buffer.customers, rows: 1000, bytes: 98304, seconds: 0.05, format: binary}]
rows:
  description: Rows copied in all.
  returned: success, not in check mode
  type: int
  sample: 1000
bytes:
  description: Bytes of COPY stream in all.
  returned: success, not in check mode
  type: int
  sample: 98304
seconds:
  description: Wall time of the copy.
  returned: success, not in check mode
  type: float
  sample: 2.5
throughput_mb_s:
  description: bytes / seconds, in MB/s.
  returned: success, not in check mode
  type: float
  sample: 42.1
sequences:
  description: Sequences set to the source's values.
  returned: success, not in check mode
  type: int
  sample: 1
large_objects:
  description: Large objects copied.
  returned: success, not in check mode
  type: int
  sample: 0
"""

from dataclasses import asdict

import psycopg
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.migration.freeze import freeze
from ansible.module_utils.pgharbor.migration.migrate import migrate
from ansible.module_utils.pgharbor.migration.preflight import preflight
from ansible.module_utils.pgharbor.pg.conninfo import connection_options, conninfo


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **connection_options("source", "target"),
            "target_role": {"type": "str"},
            "jobs": {"type": "int"},
            "status_file": {"type": "path"},
            "freeze_source": {"type": "bool", "default": False},
            "freeze_state_file": {"type": "path"},
            "drain_seconds": {"type": "float", "default": 30},
            "target_free_bytes": {"type": "int"},
            "allow_nonempty_target": {"type": "bool", "default": False},
        },
        required_if=[("freeze_source", True, ["freeze_state_file"])],
        supports_check_mode=True,
    )
    p = module.params
    source, target = conninfo(p, "source"), conninfo(p, "target")
    report = preflight(source, target, target_role=p["target_role"], target_free_bytes=p["target_free_bytes"],
                       allow_nonempty_target=p["allow_nonempty_target"])
    result: dict = {"preflight": report.as_dict()}
    if not report.ok:
        module.fail_json(msg="preflight failed, nothing was changed: " + "; ".join(
            f"{c.name}: {c.detail} -> {c.fix}" for c in report.failed), **result)
    if module.check_mode:
        module.exit_json(changed=True, **result)
    try:
        if p["freeze_source"]:
            result["freeze"] = asdict(freeze(source, p["freeze_state_file"], drain_seconds=p["drain_seconds"]))
        copied = migrate(source, target, target_role=p["target_role"], jobs=p["jobs"], status_path=p["status_file"],
                         allow_nonempty_target=p["allow_nonempty_target"])
    except (PgharborError, psycopg.Error) as exc:
        module.fail_json(msg=str(exc).strip(), **result)
    module.exit_json(changed=True, **result, **copied.as_dict())


if __name__ == "__main__":
    main()
