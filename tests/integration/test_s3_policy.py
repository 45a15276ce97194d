"""The DB host's S3 credentials, as docs/BACKUPS.md tells operators to
grant them, against a moto server that enforces IAM: shipping works with
them, while listing, reading, deleting and writing under another DB host's
prefix are refused. The policy is read from the document itself, so the
documented example is the one proved here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from backuptest import synthetic
from botocore.exceptions import ClientError
from s3server import REGION, start_s3

from pgharbor.tiers.s3 import S3Store
from pgharbor.tiers.s3settings import MIB, S3Error, S3Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "BACKUPS.md"
BUCKET = "policy-bucket"
PREFIX = "pgharbor/db1/"


def documented_policy() -> dict:
    """The JSON block of docs/BACKUPS.md that holds the put-only statement,
    with the example's bucket and prefix replaced by the test's."""
    for block in re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S):
        if "PutBackups" in block:
            return json.loads(block.replace("acme-db-backups", BUCKET).replace("pgharbor/db1/", PREFIX))
    raise AssertionError(f"{DOC} has no JSON block with the PutBackups statement")


@pytest.fixture(scope="module")
def enforcing_s3():
    """A moto server of its own (the shared one stays open): bucket and IAM
    users made first, then every request authenticated and authorised."""
    server = start_s3()
    try:
        server.bucket(BUCKET)
        keys = server.enforce({"db1-shipper": documented_policy(),
                               "inspector": {"Version": "2012-10-17", "Statement": [
                                   {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}})
        yield server, keys
    finally:
        server.stop()


def store_for(server, key: tuple[str, str], prefix: str = PREFIX) -> S3Store:
    return S3Store(S3Settings(bucket=BUCKET, prefix=prefix, endpoint_url=server.url, region=REGION,
                              access_key_id=key[0], secret_access_key=key[1], part_size_mb=5))


def denied(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def test_put_only_credentials_ship_but_cannot_read_list_or_delete(enforcing_s3, tmp_path):
    server, keys = enforcing_s3
    shipper = store_for(server, keys["db1-shipper"])
    backup = synthetic(tmp_path, 12 * MIB + 5)  # multipart: three parts
    shipped = shipper.ship(backup)
    assert shipped["backup"] == backup.id and not shipped["already_there"]

    inspector = store_for(server, keys["inspector"])
    [stored] = inspector.backups()
    assert inspector.checksum(stored) == backup.manifest.sha256

    client = shipper.client
    artefact = PREFIX + backup.artefact.name
    assert denied(lambda: client.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)) == "AccessDenied"
    assert denied(lambda: client.get_object(Bucket=BUCKET, Key=artefact)) == "AccessDenied"
    assert denied(lambda: client.delete_object(Bucket=BUCKET, Key=artefact)) == "AccessDenied"
    assert denied(lambda: client.delete_object(Bucket=BUCKET, Key=stored.manifest_key)) == "AccessDenied"
    # what the DB host could not delete is still there, whole
    assert [b.id for b in inspector.backups()] == [backup.id]


def test_put_only_credentials_cannot_write_under_another_hosts_prefix(enforcing_s3, tmp_path):
    server, keys = enforcing_s3
    intruder = store_for(server, keys["db1-shipper"], prefix="pgharbor/db2/")
    backup = synthetic(tmp_path, 1000)
    with pytest.raises(Exception, match="AccessDenied"):
        intruder.ship(backup)
    assert not store_for(server, keys["inspector"], prefix="pgharbor/db2/").backups()


def test_unknown_credentials_are_refused(enforcing_s3, tmp_path):
    server, _ = enforcing_s3
    stranger = store_for(server, ("AKIANOTAKEY000000000", "nope"))
    with pytest.raises(S3Error, match=r"failed: InvalidAccessKeyId: .*; the tier-1 copy is kept"):
        stranger.ship(synthetic(tmp_path, 1000))
