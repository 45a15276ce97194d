#!/usr/bin/python
"""Ansible wrapper around pgharbor.backup.swap."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_backup_restore
short_description: Restore a pgharbor backup into a new database, swap it in for the live one, or undo the swap
description:
  - "C(state=restored): checks the backup's checksum, restores it into the new database O(restore_name) (owned like
    O(database), owners and grants as in the backup) while the live database stays in use, and returns a preview: per
    table row counts, compared with the manifest (a difference drops the copy and fails). A complete restore of the same
    backup under that name is kept (no change)."
  - "C(state=swapped): the restored database takes the live one's name; the live one is kept as
    C(<database>_before_restore_<UTC time>). The database-level grants and settings of the live one are carried over.
    Sessions are disconnected only for the two renames. What was swapped is recorded in O(state_file) first."
  - "C(state=undone): the database the swap replaced takes the live name again; the restored one is kept as
    C(<database>_undone_<UTC time>). Without a recorded swap nothing changes, so running it twice is harmless."
  - In check mode, reports what would be done without doing it.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_backup, pgharbor_attributes]
options:
  state:
    description: What to do.
    type: str
    choices: [restored, swapped, undone]
    default: restored
  database:
    description: The live database's name.
    type: str
    required: true
  restore_name:
    description: Name of the new database the backup is restored into (default C(<database>_restore)).
    type: str
  server:
    description: libpq connection string of a superuser on the server (C(host=/var/run/postgresql dbname=postgres
      user=postgres)); owners and grants are restored as they were.
    type: str
    default: host=/var/run/postgresql dbname=postgres user=postgres
  server_password:
    description: Password for O(server).
    type: str
  state_file:
    description: Where a swap is recorded for O(state=undone) (default C(.restore-state.json) in the backup directory).
    type: path
requirements:
  - psycopg >= 3.1, gpg, zstd and pg_restore (postgresql-client) where the module runs
"""

EXAMPLES = r"""
- name: Restore the newest backup taken before the incident beside the live database
  pg_backup_restore:
    database: buffer
    backup: before:2026-11-24T09:00:00Z
    private_key: "{{ vault_backup_private_key }}"
  become: true
  become_user: postgres

- name: Swap it in
  pg_backup_restore:
    database: buffer
    state: swapped
  become: true
  become_user: postgres

- name: Undo the swap
  pg_backup_restore:
    database: buffer
    state: undone
  become: true
  become_user: postgres
"""

RETURN = r"""
source_tier:
  description: The tier the backup was taken from (the first in O(tiers) that had it).
  returned: state=restored
  type: str
  sample: tier3
skipped_tiers:
  description: The tiers tried before, each with why it did not serve.
  returned: state=restored
  type: list
  elements: str
  sample: ["tier1: no complete backup 'buffer-20261124T080000Z' in /var/backups/pgharbor (see: pgharbor-backup list)"]
backup:
  description: Id of the backup restored.
  returned: state=restored
  type: str
  sample: buffer-20261124T080000Z
preview:
  description: The restored database's tables and row counts, and their differences from the manifest (none).
  returned: state=restored, not in check mode
  type: dict
  sample: {database: buffer_restore, tables: {buffer.customers: 1000}, rows: 1000, differences: [], seconds: 2.1}
previous:
  description: Name the replaced live database is kept under.
  returned: state=swapped or undone, when a swap is recorded
  type: str
  sample: buffer_before_restore_20261124T093000Z
kept:
  description: Name the restored database is kept under after an undo.
  returned: state=undone, when changed
  type: str
  sample: buffer_undone_20261124T094500Z
disconnected_seconds:
  description: How long sessions to the database were refused (the two renames).
  returned: when a swap or undo changed something
  type: float
  sample: 0.05
"""

import os

import psycopg
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.backup.keys import secret_keyring
from ansible.module_utils.pgharbor.backup.swap import restore_new
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.pg.conninfo import connection_options, conninfo
from ansible.module_utils.pgharbor.pg.swap import swap, undo
from ansible.module_utils.pgharbor.tiers.fetch import fetched
from ansible.module_utils.pgharbor.tiers.options import backup_directory, backup_source_options, backup_sources


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["restored", "swapped", "undone"], "default": "restored"},
            **backup_source_options(),
            "database": {"type": "str", "required": True},
            "restore_name": {"type": "str"},
            **connection_options("server", default="host=/var/run/postgresql dbname=postgres user=postgres"),
            "state_file": {"type": "path"},
        },
        supports_check_mode=True,
        required_if=[("state", "restored", ["private_key"])],
    )
    p = module.params
    try:
        directory = backup_directory(p)
    except PgharborError as exc:
        module.fail_json(msg=str(exc))
    admin = conninfo(p, "server")
    restored = p["restore_name"] or f"{p['database']}_restore"
    state_file = p["state_file"] or os.path.join(directory, ".restore-state.json")
    try:
        if p["state"] == "restored":
            with backup_sources(p) as sources, fetched(p["backup"], sources) as found:
                where = {"backup": found.backup.id, "source_tier": found.tier, "skipped_tiers": found.skipped}
                if module.check_mode:
                    module.exit_json(changed=True, **where)
                with secret_keyring(p["private_key"], p["passphrase"]) as keyring:
                    changed, preview = restore_new(found.backup, keyring, admin, p["database"], restored)
            module.exit_json(changed=changed, preview=preview.as_dict(), **where)
        if module.check_mode:
            module.exit_json(changed=os.path.exists(state_file) != (p["state"] == "swapped"))
        if p["state"] == "swapped":
            module.exit_json(**swap(admin, p["database"], restored, state_file))
        module.exit_json(**undo(admin, state_file))
    except (PgharborError, psycopg.Error) as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
