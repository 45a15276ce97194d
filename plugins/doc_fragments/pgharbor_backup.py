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
  tiers:
    description:
      - The tiers to take the backup from, nearest first; a tier that is down or does not hold the backup is skipped
        (and named in the result) and the next one is tried. C(tier1) is the directory on the host; C(tier2) the backup
        server of the pg_backup role's C(pg_backup_tier2), read with O(tier2_restore_key); C(tier3) the bucket (O(s3),
        else the pg_backup role's C(pg_backup_tier3)). A copy from tier 2 or 3 goes next to tier 1 with its SHA-256
        checked, and is removed afterwards.
    type: list
    elements: str
    choices: [tier1, tier2, tier3]
    default: [tier1]
  tier2_restore_key:
    description:
      - The OpenSSH private key that the backup server authorizes to read this host's store (C(rrsync -ro),
        C(backup_server_clients[].restore_public_key)); from the vault, on the host only while the module runs. The
        host's own tier-2 key may only write.
    type: str
  tier2_restore_user:
    description: The backup server's restore login (C(backup_server_restore_user)).
    type: str
    default: pgharbor-restore
  s3:
    description: The bucket for C(tier3), as in C(pg_backup_tier3); default the pg_backup role's.
    type: dict
  s3_access_key_id:
    description: An access key that may list and read the bucket's prefix (from the vault; the host's own may only put).
    type: str
  s3_secret_access_key:
    description: Its secret.
    type: str
"""
