"""Documentation of the options that pick a backup and decrypt it, shared by
pg_dump_verify and pg_backup_restore."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  config:
    description: JSON settings file written by the pg_backup role, read for O(directory) when that is not given.
    type: path
    default: /etc/pgharbor/backup.json
  directory:
    description: The backup directory holding the backup.
    type: path
  backup:
    description: A backup id, C(latest), or C(before:<ISO time>) for the newest backup started before that time.
    type: str
    default: latest
  private_key:
    description:
      - ASCII-armored OpenPGP private key of one of the backup's recipients. It exists on the host only while the
        module runs (a temporary keyring in C(/dev/shm)); pass it from the vault, never store it on the DB host.
    type: str
  passphrase:
    description: Passphrase of O(private_key).
    type: str
"""
