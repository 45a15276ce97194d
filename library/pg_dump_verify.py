#!/usr/bin/python
"""Ansible wrapper around pgharbor.backup.verify."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_dump_verify
short_description: Prove a pgharbor backup is intact, readable, and restores to what its manifest says
description:
  - "Level C(checksum): the stored file's size and SHA-256 match its manifest."
  - "Level C(readable): also decrypts, decompresses and has C(pg_restore) read the whole dump (C(pg_restore --list)
    alone would miss a truncated or corrupted stream)."
  - "Level C(restore): also restores into a scratch database on O(server), compares per-table row counts (and content
    hashes where the manifest has them) and the number of large objects with the manifest, runs C(pg_amcheck) on the
    copy, and drops it. RV(verification.restore_seconds) is the measured restore time (RTO evidence)."
  - Levels C(readable) and C(restore) need O(private_key), which exists on the host only while the module runs (a
    temporary keyring in C(/dev/shm)); pass it from the vault, never store it on the DB host.
  - The result is appended to the directory's verification log, which C(pgharbor-backup status) reads (not in check
    mode). The module changes nothing else, so check mode verifies too. It fails when any check fails.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment: [pgharbor_backup, pgharbor_attributes]
options:
  level:
    description: How far to verify; each level includes the ones before.
    type: str
    choices: [checksum, readable, restore]
    default: checksum
  server:
    description: For level C(restore), libpq connection string of a role that may create databases (and, for
      C(pg_amcheck), install the amcheck extension), for example
      C(host=/var/run/postgresql dbname=postgres user=postgres).
    type: str
  server_password:
    description: Password for O(server).
    type: str
requirements:
  - psycopg >= 3.1, gpg, zstd and pg_restore/pg_amcheck (postgresql-client) where the module runs
"""

EXAMPLES = r"""
- name: Restore drill of the newest backup
  pg_dump_verify:
    level: restore
    private_key: "{{ vault_backup_private_key }}"
    passphrase: "{{ vault_backup_passphrase }}"
    server: host=/var/run/postgresql dbname=postgres user=postgres
  become: true
  become_user: postgres

- name: Check the stored files only (no key needed)
  pg_dump_verify:
    backup: buffer-20261124T101500Z
"""

RETURN = r"""
source_tier:
  description: The tier the backup was taken from (the first in O(tiers) that had it).
  returned: always
  type: str
  sample: tier3
skipped_tiers:
  description: The tiers tried before, each with why it did not serve.
  returned: always
  type: list
  elements: str
  sample: ["tier1: no complete backup 'buffer-20261124T080000Z' in /var/backups/pgharbor (see: pgharbor-backup list)"]
backup:
  description: Id of the backup verified.
  returned: always
  type: str
  sample: buffer-20261124T101500Z
verification:
  description: What was checked and found; on failure, the level that failed and why.
  returned: always
  type: dict
  sample: {level: restore, passed: [checksum, readable, restore], ok: true, seconds: 4.1, restore_seconds: 2.7,
           tables: 12, rows: 104213, differences: []}
age_seconds:
  description: How long ago the backup started (RPO evidence).
  returned: always
  type: int
  sample: 1820
size:
  description: Size of the stored file in bytes.
  returned: always
  type: int
  sample: 48213
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.backup.store import Store
from ansible.module_utils.pgharbor.backup.verify import LEVELS, VerifyError, verify
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.pg.conninfo import connection_options, conninfo
from ansible.module_utils.pgharbor.tiers.fetch import fetched
from ansible.module_utils.pgharbor.tiers.options import backup_source_options, backup_sources


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **backup_source_options(),
            "level": {"type": "str", "choices": list(LEVELS), "default": "checksum"},
            **connection_options("server", required=False),
        },
        supports_check_mode=True,
        required_if=[("level", "readable", ["private_key"]), ("level", "restore", ["private_key", "server"])],
    )
    p = module.params
    server = conninfo(p, "server") if p["server"] else None
    try:
        with backup_sources(p) as sources, fetched(p["backup"], sources) as found:
            store = Store(sources.directory)
            backup = found.backup
            age = int((datetime.now(timezone.utc) - backup.manifest.started_at).total_seconds())
            common = {"changed": False, "backup": backup.id, "age_seconds": age, "size": backup.manifest.size,
                      "source_tier": found.tier, "skipped_tiers": found.skipped}
            try:
                record = verify(backup, p["level"], private_key=p["private_key"], passphrase=p["passphrase"],
                                server=server)
            except VerifyError as exc:
                _note(module, store, exc.verification.as_dict())
                module.fail_json(msg=str(exc), verification=exc.verification.as_dict(), **common)
    except PgharborError as exc:
        module.fail_json(msg=str(exc))
    _note(module, store, record.as_dict())
    module.exit_json(verification=record.as_dict(), **common)


def _note(module: AnsibleModule, store: Store, record: dict) -> None:
    if not module.check_mode:
        try:
            store.record_verification(record)
        except OSError as exc:
            module.warn(f"could not record the verification in {store.root}: {exc}")


if __name__ == "__main__":
    main()
