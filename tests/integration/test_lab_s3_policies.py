"""The lab's S3 endpoint enforces least privilege as a real bucket does: the
users lab_objectstore writes (rendered from inventories/lab by real
ansible, with the role's own variables) are loaded by the lab's real wrapper
(moto-persistent.py --iam), on loopback. The DB hosts' two keys carry
exactly the policies docs/BACKUPS.md and docs/TIME_TRAVEL.md give, and each
key can do what its job needs and nothing else; a restart keeps it so."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from pgserver import free_port

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "lab" / "roles" / "lab_objectstore"
WRAPPER = ROLE / "files" / "moto-persistent.py"
REGION = "eu-central-1"
BACKUPS, TIMETRAVEL = "pgharbor-backups", "pgharbor-timetravel"  # inventories/lab/group_vars/all/main.yml


def role_users() -> list[dict]:
    """What the role writes to /etc/moto/iam.json for the lab's S3 host."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    expression = "{{ __lab_objectstore_iam_users | to_json }}"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "-i", str(REPO / "inventories" / "lab"), "object_stores",
         "-o", "-m", "ansible.builtin.debug", "-a", f"msg={expression}", "-e", f"@{ROLE / 'vars' / 'main.yml'}"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [m.group(1) for m in map(re.compile(r"^\S+ \| SUCCESS => (.*)$").match, result.stdout.splitlines()) if m]
    return json.loads(json.loads(line)["msg"])


def documented(page: str, sid: str, names: dict[str, str]) -> dict:
    text = (REPO / "docs" / page).read_text()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        if f'"Sid": "{sid}"' in block:
            for old, new in names.items():
                block = block.replace(old, new)
            return json.loads(block)
    raise AssertionError(f"docs/{page} has no JSON block with the {sid} statement")


def single(policy: dict) -> dict:
    """One-element lists as the single value the documents write for one host."""
    def one(value):
        if isinstance(value, list) and len(value) == 1:
            return value[0]
        if isinstance(value, dict):
            return {k: one(v) for k, v in value.items()}
        return value
    return {**policy, "Statement": [one(s) for s in policy["Statement"]]}


class LabS3:
    def __init__(self, users: list[dict], home: Path):
        self.users = {u["name"]: u for u in users}
        self.iam = home / "iam.json"
        self.iam.write_text(json.dumps({"users": users}))
        self.state = home / "s3.pickle"
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WRAPPER), str(self.state), "1", "--iam", str(self.iam), "--host", "127.0.0.1",
             "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/moto-api/", timeout=2).read()
                return
            except OSError:
                assert time.monotonic() < deadline, "the lab's moto wrapper did not answer"
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # the wrapper saves its state on SIGTERM
            self.process.wait(timeout=30)

    def client(self, user: str):
        key = self.users[user]
        return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.port}", region_name=REGION,
                            aws_access_key_id=key["access_key_id"], aws_secret_access_key=key["secret_access_key"])


@pytest.fixture(scope="module")
def lab_s3(tmp_path_factory):
    users = role_users()
    s3 = LabS3(users, tmp_path_factory.mktemp("lab-s3"))
    s3.start()
    try:
        admin = s3.client("lab-objectstore-admin")  # as the role creates the buckets
        admin.create_bucket(Bucket=BACKUPS, CreateBucketConfiguration={"LocationConstraint": REGION})
        admin.create_bucket(Bucket=TIMETRAVEL, CreateBucketConfiguration={"LocationConstraint": REGION},
                            ObjectLockEnabledForBucket=True)
        admin.put_bucket_versioning(Bucket=TIMETRAVEL, VersioningConfiguration={"Status": "Enabled"})
        yield s3
    finally:
        s3.stop()


def denied(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def per_host(policy: dict, hosts: list[str]) -> dict:
    """The documents' policy for db1, written for each of hosts: a list per value that names db1."""
    def each(value):
        if isinstance(value, str) and "db1" in value:
            return [value.replace("db1", host) for host in hosts]
        if isinstance(value, dict):
            return {k: each(v) for k, v in value.items()}
        return value
    return {**policy, "Statement": [each(s) for s in policy["Statement"]]}


def test_the_db_hosts_keys_carry_the_documented_policies(lab_s3):
    # the logical backups: a prefix per DB server; time travel: one path for the cluster (pgharbor)
    assert single(lab_s3.users["db-shipper"]["policy"]) == single(per_host(documented(
        "BACKUPS.md", "PutBackups", {"acme-db-backups": BACKUPS}), ["db1", "db2"]))
    assert single(lab_s3.users["db-timetravel"]["policy"]) == documented(
        "TIME_TRAVEL.md", "TimeTravelRepository", {"acme-timetravel": TIMETRAVEL, "db1/": "pgharbor/"})


def test_each_key_does_its_job_and_nothing_else(lab_s3):
    shipper, reader, timetravel = (lab_s3.client(u) for u in ("db-shipper", "backup-reader", "db-timetravel"))
    shipper.put_object(Bucket=BACKUPS, Key="pgharbor/db1/a.manifest.json", Body=b"{}")
    assert denied(lambda: shipper.list_objects_v2(Bucket=BACKUPS, Prefix="pgharbor/db1/")) == "AccessDenied"
    assert denied(lambda: shipper.get_object(Bucket=BACKUPS, Key="pgharbor/db1/a.manifest.json")) == "AccessDenied"
    assert denied(lambda: shipper.delete_object(Bucket=BACKUPS, Key="pgharbor/db1/a.manifest.json")) == "AccessDenied"
    assert denied(lambda: shipper.put_object(Bucket=BACKUPS, Key="pgharbor/db9/x", Body=b"")) == "AccessDenied"
    assert denied(lambda: shipper.put_object(Bucket=TIMETRAVEL, Key="db1/x", Body=b"")) == "AccessDenied"

    listed = reader.list_objects_v2(Bucket=BACKUPS, Prefix="pgharbor/db1/")["Contents"]
    assert [o["Key"] for o in listed] == ["pgharbor/db1/a.manifest.json"]
    assert reader.get_object(Bucket=BACKUPS, Key="pgharbor/db1/a.manifest.json")["Body"].read() == b"{}"
    assert denied(lambda: reader.put_object(Bucket=BACKUPS, Key="pgharbor/db1/b", Body=b"")) == "AccessDenied"
    assert denied(lambda: reader.delete_object(Bucket=BACKUPS, Key="pgharbor/db1/a.manifest.json")) == "AccessDenied"
    assert denied(lambda: reader.list_objects_v2(Bucket=TIMETRAVEL, Prefix="db1/")) == "AccessDenied"

    assert denied(lambda: timetravel.put_object(Bucket=TIMETRAVEL, Key="db1/x", Body=b"")) == "AccessDenied"
    timetravel.put_object(Bucket=TIMETRAVEL, Key="pgharbor/backup.info", Body=b"one")
    timetravel.put_object(Bucket=TIMETRAVEL, Key="pgharbor/backup.info", Body=b"two")
    assert timetravel.get_object(Bucket=TIMETRAVEL, Key="pgharbor/backup.info")["Body"].read() == b"two"
    assert timetravel.list_objects_v2(Bucket=TIMETRAVEL, Prefix="pgharbor/")["KeyCount"] == 1
    timetravel.delete_object(Bucket=TIMETRAVEL, Key="pgharbor/backup.info")  # pgBackRest's expiry: a delete marker
    assert denied(lambda: timetravel.list_object_versions(Bucket=TIMETRAVEL, Prefix="pgharbor/")) == "AccessDenied"
    versions = lab_s3.client("lab-objectstore-admin").list_object_versions(Bucket=TIMETRAVEL, Prefix="pgharbor/")
    assert len(versions["Versions"]) == 2 and len(versions["DeleteMarkers"]) == 1  # nothing was destroyed
    oldest = versions["Versions"][-1]["VersionId"]
    assert denied(lambda: timetravel.delete_object(Bucket=TIMETRAVEL, Key="pgharbor/backup.info",
                                                   VersionId=oldest)) == "AccessDenied"
    assert denied(lambda: timetravel.get_object(Bucket=BACKUPS, Key="pgharbor/db1/a.manifest.json")) == "AccessDenied"

    stranger = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{lab_s3.port}", region_name=REGION,
                            aws_access_key_id="nobody", aws_secret_access_key="x")
    assert denied(lambda: stranger.list_objects_v2(Bucket=BACKUPS)) == "InvalidAccessKeyId"


def test_a_restart_keeps_the_objects_and_the_enforcement(lab_s3):
    lab_s3.stop()
    lab_s3.start()
    reader = lab_s3.client("backup-reader")
    assert reader.get_object(Bucket=BACKUPS, Key="pgharbor/db1/a.manifest.json")["Body"].read() == b"{}"
    assert denied(lambda: reader.delete_object(Bucket=BACKUPS, Key="pgharbor/db1/a.manifest.json")) == "AccessDenied"
