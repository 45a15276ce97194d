"""Tier 3: backups as objects in an S3-compatible bucket.

    <prefix><id>.dump.zst.gpg     the artefact, uploaded first
    <prefix><id>.manifest.json    uploaded last, only once the artefact is there

Content is proved by the whole file's SHA-256, which S3 cannot compute for
a multipart object (its multipart checksums are checksums of the parts'
checksums, no more a content hash than an ETag is). So the SHA-256 is
computed here from the very bytes read for the parts (one read of the
tier-1 file), must equal the manifest's before the manifest goes up, and
travels as the object's `sha256` metadata; every download checks it again.
Each part goes up with its CRC32, which S3 checks on receipt and reports
back (the reported value is compared with ours), so a part damaged on the
way is refused. CRC32 is what boto3's own upload_file sends and is cheaper
for both ends than a second SHA-256 pass; a small object (manifest,
single-part artefact) goes up with its SHA-256, which S3 then does check.
Both objects are written only if absent (If-None-Match), so shipping twice
never replaces a stored backup.

The DB host's credentials only need to put objects and abort its own
multipart uploads; listing, downloading and deleting (restore, health,
retention) use other credentials (docs/BACKUPS.md has the bucket policy).
"""

from __future__ import annotations

import base64
import hashlib
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..backup.manifest import ARTEFACT_SUFFIX, MANIFEST_SUFFIX, Manifest, ManifestError
from ..backup.store import Backup
from .s3settings import MIB, MIN_PART, S3Error, S3Settings

# S3's limit: at most 10000 parts.
MAX_PARTS = 10_000
READ_CHUNK = 4 * MIB


@dataclass(frozen=True)
class StoredBackup:
    """A complete backup in the bucket: its manifest and the artefact's key."""
    manifest: Manifest
    artefact_key: str
    manifest_key: str

    @property
    def id(self) -> str:
        return self.manifest.id


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def b64_crc32(data: bytes) -> str:
    """S3's form of a CRC32: the four bytes big-endian, in base64."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def part_size(size: int, wanted: int) -> int:
    """wanted, grown until the file fits into S3's 10000 parts."""
    chunk = max(wanted, MIN_PART)
    while chunk * MAX_PARTS < size:
        chunk *= 2
    return chunk


class S3Store:
    def __init__(self, settings: S3Settings):
        self.settings = settings
        # standard mode: exponential backoff with full jitter, connection errors included
        config = Config(retries={"mode": "standard", "max_attempts": settings.max_attempts},
                        connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                        max_pool_connections=max(10, settings.concurrency + 2))
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=settings.endpoint_url, region_name=settings.region,
            aws_access_key_id=settings.access_key_id, aws_secret_access_key=settings.secret_access_key,
            config=config)
        # Header, not parameter: Debian 12's botocore predates IfNoneMatch.
        for operation in ("PutObject", "CompleteMultipartUpload"):
            self.client.meta.events.register(f"before-sign.s3.{operation}", _only_if_absent)

    def key(self, name: str) -> str:
        return self.settings.prefix + name

    # -- shipping (put-only credentials) ---------------------------------

    def ship(self, backup: Backup, progress: Callable[[int], None] | None = None) -> dict:
        """Upload one tier-1 backup: artefact, then manifest. Returns what was
        done; raises S3Error naming the endpoint and the step that failed."""
        started = time.monotonic()
        try:
            aborted = self.abort_abandoned_uploads()
            artefact_new = self._upload_artefact(backup, progress)
            manifest_new = self._put_if_absent(self.key(backup.manifest_path.name), backup.manifest_path.read_bytes(),
                                               content_type="application/json")
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(f"shipping {backup.id} to {self.settings.where()} failed: {error_text(exc)}; the tier-1 copy "
                          "is kept and the next run ships it again") from exc
        return {"tier": "s3", "backup": backup.id, "bytes": backup.manifest.size,
                "seconds": round(time.monotonic() - started, 3),
                "already_there": not (artefact_new or manifest_new), "aborted_uploads": aborted}

    def abort_abandoned_uploads(self) -> int:
        """Multipart uploads under the prefix that a killed or cut-off run
        left behind: storage that is billed but is no object. Only one
        shipment per prefix runs at a time (the tier-1 lock), so every
        upload found here is abandoned."""
        aborted = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=self.settings.prefix):
            for upload in page.get("Uploads", []):
                self.client.abort_multipart_upload(Bucket=self.settings.bucket, Key=upload["Key"],
                                                   UploadId=upload["UploadId"])
                aborted += 1
        return aborted

    def _object_args(self, sha256_hex: str | None) -> dict:
        s = self.settings
        args: dict = {"Bucket": s.bucket}
        if sha256_hex:
            args["Metadata"] = {"sha256": sha256_hex}
        if s.storage_class:
            args["StorageClass"] = s.storage_class
        if s.server_side_encryption:
            args["ServerSideEncryption"] = s.server_side_encryption
        if s.kms_key_id:
            args["SSEKMSKeyId"] = s.kms_key_id
        if s.object_lock_mode:
            args["ObjectLockMode"] = s.object_lock_mode
            args["ObjectLockRetainUntilDate"] = datetime.now(timezone.utc) + timedelta(days=s.object_lock_days or 0)
        return args

    def _put_if_absent(self, key: str, body: bytes, *, content_type: str = "application/octet-stream",
                       sha256_hex: str | None = None) -> bool:
        digest = b64_sha256(body)
        try:
            reply = self.client.put_object(Key=key, Body=body, ContentType=content_type, ChecksumAlgorithm="SHA256",
                                           ChecksumSHA256=digest, **self._object_args(sha256_hex))
        except ClientError as exc:
            if _code(exc) == "PreconditionFailed":
                return False
            raise
        _same_checksum(key, "SHA256", digest, reply)
        return True

    def _upload_artefact(self, backup: Backup, progress: Callable[[int], None] | None) -> bool:
        size = backup.manifest.size
        chunk = part_size(size, self.settings.part_size_mb * MIB)
        key = self.key(backup.artefact.name)
        if size <= chunk:
            body = backup.artefact.read_bytes()
            _check_whole(backup, hashlib.sha256(body).hexdigest())
            created = self._put_if_absent(key, body, sha256_hex=backup.manifest.sha256)
            if progress:
                progress(size)
            return created
        upload = self.client.create_multipart_upload(Key=key, ContentType="application/octet-stream",
                                                     ChecksumAlgorithm="CRC32",
                                                     **self._object_args(backup.manifest.sha256))
        upload_id = upload["UploadId"]
        try:
            parts = self._upload_parts(backup, key, upload_id, chunk, progress)
            try:
                self.client.complete_multipart_upload(
                    Bucket=self.settings.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
            except ClientError as exc:
                if _code(exc) == "PreconditionFailed":
                    self._abort(key, upload_id)
                    return False
                raise
            return True
        except BaseException:
            self._abort(key, upload_id)
            raise

    def _upload_parts(self, backup: Backup, key: str, upload_id: str, chunk: int,
                      progress: Callable[[int], None] | None) -> list[dict]:
        """Each part is read once, in order: the same bytes feed the whole
        file's hash here and that part's upload in a worker. At most
        `concurrency` parts wait in memory, so a read never runs far ahead
        of the network."""
        size = backup.manifest.size
        whole = hashlib.sha256()
        in_flight: deque[Future] = deque()
        parts: list[dict] = []

        def one(number: int, data: bytes) -> dict:
            crc = b64_crc32(data)
            reply = self.client.upload_part(Bucket=self.settings.bucket, Key=key, UploadId=upload_id,
                                            PartNumber=number, Body=data, ChecksumAlgorithm="CRC32",
                                            ChecksumCRC32=crc)
            _same_checksum(f"{key} part {number}", "CRC32", crc, reply)
            return {"PartNumber": number, "ETag": reply["ETag"], "ChecksumCRC32": crc}

        def collect() -> None:
            parts.append(in_flight.popleft().result())
            if progress:
                progress(min(len(parts) * chunk, size))

        with open(backup.artefact, "rb", buffering=0) as source, \
                ThreadPoolExecutor(self.settings.concurrency) as pool:
            try:
                for number in range(1, -(-size // chunk) + 1):
                    # A regular file's read is short only at its end (EINTR is retried by Python).
                    data = source.read(min(chunk, size - (number - 1) * chunk))
                    whole.update(data)
                    in_flight.append(pool.submit(one, number, data))
                    del data  # while collect() waits, only the workers hold parts
                    if len(in_flight) >= self.settings.concurrency:
                        collect()
                if source.read(1):
                    raise S3Error(f"{backup.artefact} is longer than its manifest says ({size} bytes): not shipped; "
                                  "verify it with pgharbor-backup verify")
                _check_whole(backup, whole.hexdigest())
                while in_flight:
                    collect()
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        return parts

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.settings.bucket, Key=key, UploadId=upload_id)
        except (BotoCoreError, ClientError):
            pass  # the endpoint is gone: the next shipment's abort_abandoned_uploads removes it

    # -- reading (restore, health, retention credentials) -----------------

    def backups(self) -> list[StoredBackup]:
        """Complete backups, oldest first: a manifest that parses and an
        artefact of the recorded size beside it."""
        sizes: dict[str, int] = {}
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=self.settings.prefix):
                for item in page.get("Contents", []):
                    sizes[item["Key"]] = item["Size"]
            found = []
            for key in sorted(k for k in sizes if k.endswith(MANIFEST_SUFFIX)):
                try:
                    manifest = Manifest.from_json(self._get(key).decode())
                except (ManifestError, UnicodeDecodeError):
                    continue
                artefact_key = self.key(manifest.artefact)
                if not manifest.artefact.endswith(ARTEFACT_SUFFIX) or sizes.get(artefact_key) != manifest.size:
                    continue
                found.append(StoredBackup(manifest, artefact_key, key))
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(f"cannot list {self.settings.where()}: {error_text(exc)}") from exc
        return sorted(found, key=lambda b: (b.manifest.started, b.id))

    def _get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.settings.bucket, Key=key)["Body"].read()

    def chunks(self, stored: StoredBackup) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.settings.bucket, Key=stored.artefact_key)["Body"]
        try:
            yield from body.iter_chunks(READ_CHUNK)
        finally:
            body.close()

    def download(self, stored: StoredBackup, directory: Path) -> Backup:
        """The artefact and its manifest into directory (manifest last), the
        artefact's SHA-256 checked on the way: a tier-1-shaped copy."""
        target = directory / stored.manifest.artefact
        partial = target.with_name(target.name + ".partial")
        digest = hashlib.sha256()
        try:
            with open(partial, "wb") as out:
                for chunk in self.chunks(stored):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != stored.manifest.sha256:
                raise S3Error(f"{stored.artefact_key} in {self.settings.where()} does not match its manifest "
                              f"(sha256 {digest.hexdigest()}, manifest {stored.manifest.sha256}): the stored object "
                              "is damaged; take the backup from another tier")
            partial.rename(target)
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(f"downloading {stored.artefact_key} from {self.settings.where()} failed: "
                          f"{error_text(exc)}") from exc
        finally:
            partial.unlink(missing_ok=True)
        manifest_path = directory / Path(stored.manifest_key).name
        manifest_path.write_text(stored.manifest.to_json())
        return Backup(stored.manifest, target, manifest_path)

    def checksum(self, stored: StoredBackup) -> str:
        """The SHA-256 of the stored artefact, read back in full."""
        digest = hashlib.sha256()
        try:
            for chunk in self.chunks(stored):
                digest.update(chunk)
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(f"reading {stored.artefact_key} from {self.settings.where()} failed: "
                          f"{error_text(exc)}") from exc
        return digest.hexdigest()

    def delete(self, stored: StoredBackup) -> None:
        """Manifest first: a backup half deleted is no longer a backup."""
        try:
            for key in (stored.manifest_key, stored.artefact_key):
                self.client.delete_object(Bucket=self.settings.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise S3Error(f"deleting {stored.id} from {self.settings.where()} failed: {error_text(exc)}") from exc


def _only_if_absent(request, **_) -> None:
    request.headers["If-None-Match"] = "*"


def _check_whole(backup: Backup, sha256_hex: str) -> None:
    if sha256_hex != backup.manifest.sha256:
        raise S3Error(f"{backup.artefact} no longer matches its manifest (sha256 {sha256_hex}, manifest "
                      f"{backup.manifest.sha256}): not shipped; verify it with pgharbor-backup verify")


def _same_checksum(what: str, algorithm: str, sent: str, reply: dict) -> None:
    got = reply.get(f"Checksum{algorithm}")
    if got is not None and got != sent:
        raise S3Error(f"S3 stored {what} with {algorithm.lower()} {got}, but {sent} was sent: the data changed on "
                      "the way")


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def error_text(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".strip()
    return str(exc)
