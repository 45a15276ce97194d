"""Tier 3 as it was at a time: pgBackRest's S3 repository rebuilt from the
bucket's object versions into a directory, which pgBackRest then reads as a
repository on disk (timetravel.engine.Pgbackrest.at).

The bucket has versioning and Object Lock, so whatever the DB host's
credentials did to repo2 (an expire, a delete, an overwrite) only added
versions and delete markers; the state before it is still there, version by
version. Debian's pgBackRest 2.45 reads only the current versions, so this is
the way back: for every key, the newest version written at or before the
time, unless that is a delete marker.

Each file keeps its version's time: the restorable window is read from the
times of the WAL files (window.py), so a rebuilt repository reports the
window it had then. Reading versions needs s3:ListBucketVersions and
s3:GetObjectVersion, which the DB host's own key does not have: the rebuild
runs with the rebuild key (docs/TIME_TRAVEL.md)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import PgharborError
from .s3 import error_text

# S3 gives a version's time to the second; a time asked for is compared at that precision.
RESOLUTION = dt.timedelta(seconds=1)
CHUNK = 8 << 20


class AsOfError(PgharborError, RuntimeError):
    pass


@dataclass(frozen=True)
class Version:
    key: str
    version_id: str
    modified: dt.datetime
    size: int
    deleted: bool  # a delete marker


@dataclass
class Rebuild:
    as_of: dt.datetime
    into: Path
    files: int = 0
    bytes: int = 0
    # Keys whose state at the time was a delete marker, and keys first written after it.
    deleted_then: int = 0
    newer_only: int = 0
    # Keys whose current version differs from the one taken: what changed since.
    changed_since: list[str] = field(default_factory=list)

    def text(self) -> str:
        return (f"rebuilt repo2 as of {self.as_of:%Y-%m-%d %H:%M:%S} UTC into {self.into}: {self.files} files, "
                f"{self.bytes >> 20} MiB; {len(self.changed_since)} changed or deleted since, {self.newer_only} "
                f"written after it left out, {self.deleted_then} already deleted then")


def s3_client(tier3: dict[str, Any]) -> Any:
    """A client for the bucket of the settings file's tier3 (the pg_timetravel role writes it), its
    CA checked; the key comes from boto3's own places (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, AWS_PROFILE), so the rebuild key is never stored on the DB host."""
    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise AsOfError("no S3 key for the rebuild: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) "
                        "to the rebuild key (s3:ListBucketVersions, s3:GetObjectVersion; docs/TIME_TRAVEL.md)")
    style = "path" if tier3.get("path_style") else "virtual"
    return session.client("s3", endpoint_url=tier3["endpoint_url"], region_name=tier3["region"],
                          verify=tier3.get("ca_file") or True,
                          config=Config(s3={"addressing_style": style}, retries={"mode": "standard"}))


def listing(client: Any, bucket: str, prefix: str) -> dict[str, list[Version]]:
    """Every version and delete marker under prefix, by key, newest first."""
    versions: dict[str, list[Version]] = {}
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for kind, deleted in (("Versions", False), ("DeleteMarkers", True)):
                for v in page.get(kind, []):
                    versions.setdefault(v["Key"], []).append(Version(
                        v["Key"], v["VersionId"], v["LastModified"], v.get("Size", 0), deleted))
    except (BotoCoreError, ClientError) as exc:
        raise AsOfError(f"cannot list the object versions of s3://{bucket}/{prefix}: {error_text(exc)}. The rebuild "
                        "needs a key with s3:ListBucketVersions and s3:GetObjectVersion on the bucket (the rebuild "
                        "key of docs/TIME_TRAVEL.md), not the DB host's") from None
    for key in versions:
        # Newest first; at the same second a version before a delete marker: keeping data is the safe side.
        versions[key].sort(key=lambda v: (v.modified, not v.deleted), reverse=True)
    return versions


def choose(versions: dict[str, list[Version]], when: dt.datetime) -> tuple[dict[str, Version], Rebuild]:
    """The version of each key that was current at when, and what the choice left out."""
    limit = when.replace(microsecond=0)
    summary = Rebuild(when, Path())
    chosen: dict[str, Version] = {}
    for key, history in versions.items():
        then = next((v for v in history if v.modified <= limit), None)
        if then is None:
            summary.newer_only += 1
        elif then.deleted:
            summary.deleted_then += 1
        else:
            chosen[key] = then
            if history[0] != then:
                summary.changed_since.append(key)
    return chosen, summary


def rebuild(client: Any, bucket: str, prefix: str, when: dt.datetime, into: Path) -> Rebuild:
    """Write the repository as it was at when into the directory into, which must not exist
    yet (a rebuild never mixes with other files). prefix is the repository's path in the
    bucket (repo2-path without its leading slash)."""
    if into.exists():
        raise AsOfError(f"{into} exists already: rebuild into a new directory (a rebuild never writes over files)")
    prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
    chosen, summary = choose(listing(client, bucket, prefix), when)
    if not any(k.endswith("/backup.info") for k in chosen):
        raise AsOfError(f"s3://{bucket}/{prefix} held no pgBackRest repository at {when:%Y-%m-%d %H:%M:%S} UTC "
                        "(no backup.info then): choose a later time, or check the bucket and repo2's path")
    into.mkdir(mode=0o750, parents=True)
    summary.into = into
    for version in chosen.values():
        path = into / version.key[len(prefix):]
        path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        _download(client, bucket, version, path)
        summary.files += 1
        summary.bytes += version.size
    return summary


def _download(client: Any, bucket: str, version: Version, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        body = client.get_object(Bucket=bucket, Key=version.key, VersionId=version.version_id)["Body"]
        with partial.open("wb") as out:
            for chunk in iter(lambda: body.read(CHUNK), b""):
                out.write(chunk)
    except (BotoCoreError, ClientError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise AsOfError(f"cannot read version {version.version_id} of {version.key}: {error_text(exc)}") from None
    got = partial.stat().st_size
    if got != version.size:
        partial.unlink()
        raise AsOfError(f"version {version.version_id} of {version.key} came {got} bytes long, "
                        f"the bucket lists {version.size}: try again")
    stamp = version.modified.timestamp()
    os.utime(partial, (stamp, stamp))
    partial.rename(path)

