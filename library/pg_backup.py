#!/usr/bin/python
"""Ansible wrapper around pgharbor.cli.agent: a backup now, as the timer takes it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_backup
short_description: Take an encrypted, verified-format logical backup of a PostgreSQL database now
description:
  - "Runs C(pg_dump --format=custom) from an exported snapshot, compresses with zstd and encrypts with gpg (AES-256) to
    every key in O(recipients); the stored file is hashed as it is written. No plaintext reaches the disk."
  - The manifest (database, server version, snapshot, tools, recipients, size, SHA-256, per-table row counts from the
    same snapshot, optionally content hashes) is written last; a file without a manifest is not a backup.
  - Checked before the dump, each with a message naming the setting to fix; the directory, the keys (present, able to
    encrypt, not expired), the tools, the database (reachable), the free space. A second run while one is in
    progress is refused (lock).
  - The settings are read from O(config) (what the pg_backup role writes and the timer uses); options given here
    override them.
  - After the backup, every tier configured in O(config) (tier 2 over SSH, tier 3 in S3) receives what it misses,
    oldest first, and tier 1's retention runs; a tier that fails does not stop the others, and the task then fails
    with the backup taken and each tier's error in RV(shipping).
  - In check mode, runs the checks and reports what a backup would use, without dumping.
  - With O(requested_by), the backup is recorded in O(audit_log) (who, when, which database, where it went).
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment:
  - pgharbor_attributes
options:
  config:
    description: JSON settings file written by the pg_backup role; ignored when absent.
    type: path
    default: /etc/pgharbor/backup.json
  db:
    description: libpq connection string of the database to back up, for example
      C(host=/var/run/postgresql dbname=buffer user=backup).
    type: str
  db_password:
    description: Password for O(db), kept out of the connection string so that it is never logged.
    type: str
  directory:
    description: The tier-1 backup directory (owned by the user the module runs as, mode 0700).
    type: path
  keyring:
    description: gpg home holding the recipients' public keys.
    type: path
  recipients:
    description: Fingerprints of the OpenPGP keys the backup is encrypted to (each can decrypt it).
    type: list
    elements: str
  compression_level:
    description: zstd level (1-19).
    type: int
  compression_threads:
    description: zstd worker threads (0 uses every core).
    type: int
  table_hashes:
    description: Also record a content hash per table in the manifest (reads every table a second time).
    type: bool
  reserve_mb:
    description: Free space (MiB) to leave on the disk beyond the backup's estimated size.
    type: int
  server_name:
    description: Name of the server recorded in the manifest (default the host name).
    type: str
  cluster_member:
    description:
      - In a cluster (high availability), the member that takes the backups; on the other members the module
        takes nothing and says who does. A single server is always the primary.
      - C(standby) spares the primary the read load of pg_dump.
    type: str
    choices: [primary, standby]
  requested_by:
    description: Who asked for this backup; when set, the backup is recorded in O(audit_log).
    type: str
  reason:
    description: Why (recorded in O(audit_log) with O(requested_by)).
    type: str
    default: ""
  audit_log:
    description: Append-only JSON-lines log of on-demand backups.
    type: path
    default: /var/log/pgharbor/audit.jsonl
requirements:
  - psycopg >= 3.1, gpg, zstd and pg_dump (postgresql-client) where the module runs
"""

EXAMPLES = r"""
- name: Back up the buffer database now, with the timer's settings
  pg_backup:
    requested_by: "{{ lookup('ansible.builtin.env', 'USER') }}"
    reason: export for the client
  become: true
  become_user: postgres

- name: Back up with explicit settings
  pg_backup:
    config: ""
    db: host=/var/run/postgresql dbname=buffer user=backup
    directory: /var/backups/pgharbor
    keyring: /etc/pgharbor/keyring
    recipients: [73A79928307AA0E3D2DD80D3887335684948CFC8]
"""

RETURN = r"""
backup:
  description: Id of the backup taken (database and UTC start time).
  returned: success, not in check mode
  type: str
  sample: buffer-20261124T101500Z
artefact:
  description: Path of the encrypted dump.
  returned: success, not in check mode
  type: str
  sample: /var/backups/pgharbor/buffer-20261124T101500Z.dump.zst.gpg
manifest:
  description: The manifest written next to the artefact (see the backup format in docs/BACKUPS.md).
  returned: success, not in check mode
  type: dict
  sample: {id: buffer-20261124T101500Z, size: 48213, sha256: 9f2c..., tables: {buffer.customers: {rows: 1000}}}
seconds:
  description: Wall time of the backup.
  returned: success, not in check mode
  type: float
  sample: 3.2
shipping:
  description: Per configured tier, the backups shipped by this run, the error if any, and how many are still pending.
  returned: success or a shipping failure, not in check mode
  type: dict
  sample: {tier2: {shipped: [buffer-20261124T101500Z], error: "", pending: 0}}
retention:
  description: Tier 1's retention decisions (newest first), each with its reasons; removed backups have C(keep) false.
  returned: success or a shipping failure, not in check mode
  type: list
  elements: dict
  sample: [{id: buffer-20261124T101500Z, keep: true, reasons: [newest backup, hourly 1/24]}]
acting:
  description: Whether this server takes the backups (false on the members O(cluster_member) did not choose).
  returned: always
  type: bool
  sample: true
role:
  description: What the server is now, C(primary) or C(standby).
  returned: always
  type: str
  sample: primary
checks:
  description: In check mode, what the checks found (database, its size, free space, recipients, tools).
  returned: check mode
  type: dict
  sample: {database: buffer, database_bytes: 8041763, free_bytes: 5012312064}
audit:
  description: The entry appended to O(audit_log).
  returned: when O(requested_by) is set, not in check mode
  type: dict
  sample: {action: backup, who: alice, database: buffer, backup: buffer-20261124T101500Z}
"""

import os
import time
from dataclasses import asdict

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.backup.audit import audit
from ansible.module_utils.pgharbor.backup.take import check_backup
from ansible.module_utils.pgharbor.cli.agent import ShippingFailed, acting_here, run_backup, settings_from
from ansible.module_utils.pgharbor.common.settings import BACKUP_CONFIG, load_config
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.pg.conninfo import connection_options, with_password

SETTINGS = ("db", "directory", "keyring", "recipients", "compression_level", "compression_threads",
            "table_hashes", "reserve_mb", "server_name", "cluster_member")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "config": {"type": "path", "default": BACKUP_CONFIG},
            **connection_options("db", required=False),
            "directory": {"type": "path"},
            "keyring": {"type": "path"},
            "recipients": {"type": "list", "elements": "str"},
            "compression_level": {"type": "int"},
            "compression_threads": {"type": "int"},
            "table_hashes": {"type": "bool"},
            "reserve_mb": {"type": "int"},
            "server_name": {"type": "str"},
            "cluster_member": {"type": "str", "choices": ["primary", "standby"]},
            "requested_by": {"type": "str"},
            "reason": {"type": "str", "default": ""},
            "audit_log": {"type": "path", "default": "/var/log/pgharbor/audit.jsonl"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        config = load_config(p["config"]) if p["config"] and os.path.exists(p["config"]) else {}
        config.update({key: p[key] for key in SETTINGS if p[key] is not None})
        if config.get("db"):
            config["db"] = with_password(config["db"], p["db_password"])
        settings = settings_from(config)
        here = acting_here(settings.conninfo, settings.cluster_member)
    except PgharborError as exc:
        module.fail_json(msg=str(exc))
    if not here.acting:
        module.exit_json(changed=False, acting=False, role=here.role, msg=here.reason)
    try:
        if module.check_mode:
            module.exit_json(changed=True, acting=True, role=here.role, checks=check_backup(settings))
        begin = time.monotonic()
        failed = ""
        try:
            run = run_backup(settings)
        except ShippingFailed as exc:
            run, failed = exc.run, str(exc)
    except PgharborError as exc:
        module.fail_json(msg=str(exc))
    manifest = run.manifest
    result = {"changed": True, "acting": True, "role": here.role, "backup": manifest.id,
              "artefact": os.path.join(settings.directory, manifest.artefact), "manifest": asdict(manifest),
              "seconds": round(time.monotonic() - begin, 3), "shipping": run.shipping, "retention": run.retention}
    if p["requested_by"]:
        where = [result["artefact"]] + [tier for tier, r in run.shipping.items() if manifest.id in r["shipped"]]
        result["audit"] = audit(p["audit_log"], "backup", p["requested_by"], reason=p["reason"],
                                database=manifest.database, backup=manifest.id, where=where,
                                size=manifest.size, sha256=manifest.sha256)
    if failed:
        module.fail_json(msg=failed, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
