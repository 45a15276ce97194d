"""Backups beyond the DB host: shipping over SSH (tier 2) and to S3 (tier 3), intake on the backup
server, fetching for a restore, retention, health and the report across tiers."""
