#!/usr/bin/python
"""Ansible wrapper around pgharbor.migration.compare."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_compare
short_description: Prove two PostgreSQL databases hold the same schema and data
description:
  - Reads each side in one snapshot with fixed session settings, so a value has the same text on both.
  - "Schema: schemas, tables, columns and types, constraints, indexes, sequences, views, functions, triggers,
    rules, types, policies, extensions, comments, security labels, aggregates, extended statistics, collations,
    casts, operators, operator classes and families, conversions, languages, text search objects, foreign-data
    wrappers, servers, user mappings (their options by name only: they hold passwords), event triggers,
    publications, transforms and access methods; every object's owner and grants (relations, columns,
    functions, schemas, types, languages, foreign-data wrappers and servers, large objects) and default
    privileges, with source roles mapped through O(role_map) and grants to O(ignore_roles) left out.
    Differences come as a readable diff."
  - "State that the definition text does not show is compared too: triggers and rules enabled, disabled, replica or
    always; replica identity and storage parameters of tables and views; a column's storage, compression,
    statistics target and options; the index a table is clustered on; what owns a sequence; an extension's
    schema; whether a materialized view is populated."
  - "Data: per table and per populated materialized view, row counts and hashes of chunks of O(chunk_rows) rows
    ordered by primary key (tables without one: by the whole row's text, duplicates counted), each row hashed as
    its exact text form under the fixed session settings, never through a type's equality operator or hash
    function, which may call distinct values equal ('Alice' and 'ALICE' under a case-folding collation, 1.0 and
    1.00, -0 and 0, 1 year and 360 days, jsonb's 1.5 and 1.50, points within a tolerance); a differing chunk
    is narrowed down to example key values of missing, extra and changed rows. Sequences' values and large
    objects are compared too."
  - Fails when anything differs; the message lists every difference. Reads only, so check mode compares too.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_connection, pgharbor_attributes]
options:
  role_map:
    description:
      - Source role -> target role, for comparing owners and grants. The migration gives every object to the
        target's owner role, so the source's owners map to it; an owner not mapped must be the same role on both.
    type: dict
    default: {}
  ignore_roles:
    description: Roles whose grants are not compared (the target's own least-privilege users).
    type: list
    elements: str
    default: []
  chunk_rows:
    description: Rows per hashed chunk.
    type: int
    default: 10000
  examples:
    description: Example keys reported per kind of difference and table.
    type: int
    default: 5
  jobs:
    description: Hashing queries run at a time over both sides (each side's workers join its snapshot); default one
      per CPU, at least 2.
    type: int
"""

EXAMPLES = r"""
- name: Compare buffer on the legacy host with its copy on db1
  pg_compare:
    source: host=/var/run/postgresql dbname=buffer user=postgres
    target: host=db1 dbname=buffer user=migrator sslmode=verify-full sslrootcert=/var/lib/pgharbor/migration/ca.crt
    target_password: "{{ vault_migrator_password }}"
    role_map: {buffer_app: buffer_owner}
    ignore_roles: [app_rw, app_ro, backup, monitor]
  become: true
  become_user: postgres
"""

RETURN = r"""
equal:
  description: Schema and data are the same on both sides.
  returned: always
  type: bool
  sample: true
differences:
  description: One line per difference (empty when equal).
  returned: always
  type: list
  elements: str
  sample: ["table buffer.orders: 1000 rows on source, 999 on target, 1 differing chunks; missing on target e.g.
            ['17']..."]
schema_diff:
  description: Schema differences, C(-) only on the source, C(+) only on the target, C(~) changed.
  returned: always
  type: str
  sample: "indexes:\n  - buffer.orders_customer_idx"
schema_counts:
  description: Objects compared per kind.
  returned: always
  type: dict
  sample: {tables: 3, indexes: 4}
tables:
  description: Per table, row counts on both sides, chunks, differing chunks and example keys, and C(equal).
  returned: always
  type: list
  elements: dict
  sample: [{table: buffer.customers, source_rows: 1000, target_rows: 1000, chunks: 1, differing_chunks: [],
            equal: true}]
sequences:
  description: Sequences whose values differ.
  returned: always
  type: list
  elements: str
  sample: []
large_objects:
  description: Large objects that differ.
  returned: always
  type: list
  elements: str
  sample: []
seconds:
  description: Wall time of the comparison.
  returned: always
  type: float
  sample: 0.8
"""

import psycopg
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.migration.compare import compare
from ansible.module_utils.pgharbor.pg.conninfo import connection_options, conninfo


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **connection_options("source", "target"),
            "role_map": {"type": "dict", "default": {}},
            "ignore_roles": {"type": "list", "elements": "str", "default": []},
            "chunk_rows": {"type": "int", "default": 10000},
            "examples": {"type": "int", "default": 5},
            "jobs": {"type": "int"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        report = compare(conninfo(p, "source"), conninfo(p, "target"), role_map=p["role_map"],
                         ignore_roles=p["ignore_roles"], chunk_rows=p["chunk_rows"], examples=p["examples"],
                         jobs=p["jobs"])
    except (PgharborError, psycopg.Error) as exc:
        module.fail_json(msg=str(exc).strip())
    result = {"changed": False, **report.as_dict()}
    if not report.equal:
        module.fail_json(msg="source and target differ: " + "; ".join(report.differences()), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
