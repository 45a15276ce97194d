"""Where and how tier 3 is written: the settings of an S3-compatible
bucket, checked with messages that name the inventory setting. No boto3
here, so that a host without tier 3 needs no boto3."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..common.settings import unknown_keys
from ..errors import PgharborError

MIB = 1024 * 1024
# S3's smallest part (all but the last).
MIN_PART = 5 * MIB
LOCK_MODES = ("GOVERNANCE", "COMPLIANCE")


class S3Error(PgharborError, RuntimeError):
    pass


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    storage_class: str | None = None
    server_side_encryption: str | None = None
    kms_key_id: str | None = None
    object_lock_mode: str | None = None
    object_lock_days: int | None = None
    part_size_mb: int = 16
    concurrency: int = 4
    max_attempts: int = 5
    connect_timeout: float = 10
    read_timeout: float = 60

    @classmethod
    def from_dict(cls, values: dict, setting: str) -> S3Settings:
        problem = unknown_keys(cls, values, setting)
        if problem:
            raise S3Error(problem)
        if not values.get("bucket"):
            raise S3Error(f"{setting}.bucket is required: the bucket that holds tier 3")
        s = cls(**values)
        if s.prefix and not s.prefix.endswith("/"):
            raise S3Error(f"{setting}.prefix must end with '/' (for example pgharbor/db1/), not {s.prefix!r}")
        if s.object_lock_mode is not None and s.object_lock_mode not in LOCK_MODES:
            raise S3Error(f"{setting}.object_lock_mode must be GOVERNANCE or COMPLIANCE, not {s.object_lock_mode!r}")
        if (s.object_lock_mode is None) != (s.object_lock_days is None):
            raise S3Error(f"{setting}: set object_lock_mode and object_lock_days together (or neither)")
        if s.part_size_mb * MIB < MIN_PART:
            raise S3Error(f"{setting}.part_size_mb must be at least 5 (S3's smallest part), not {s.part_size_mb}")
        return s

    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")
