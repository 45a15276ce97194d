"""Documentation of the options that name a tier of backups, shared by
pg_backup_info and pg_backup_retention."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  tier:
    description:
      - C(tier1), the DB host's own backups (the directory in the pg_backup role's settings); C(tier2), on the backup
        server, the backups stored for O(host); C(tier3), an S3 bucket (O(s3)), from the controller.
    type: str
    choices: [tier1, tier2, tier3]
    default: tier1
  config:
    description:
      - The settings file of the role that runs the tier; default C(/etc/pgharbor/backup.json) for C(tier1) and
        C(/etc/pgharbor/backup-server.json) for C(tier2). Not used for C(tier3).
    type: path
  host:
    description: For C(tier2), the DB host (its name in C(backup_server_clients)).
    type: str
  s3:
    description: For C(tier3), the bucket as in C(pg_backup_tier3) (bucket, prefix, endpoint_url, region, ...).
    type: dict
  s3_access_key_id:
    description:
      - For C(tier3), an access key for the prefix (listing and reading; deleting too for retention). The DB hosts'
        own keys may only put objects.
    type: str
  s3_secret_access_key:
    description: Its secret.
    type: str
requirements:
  - boto3 (for C(tier3))
"""
