"""Tier 3 turned against itself: the DB host's own key for the time-travel
bucket (the policy of docs/TIME_TRAVEL.md, read from the page) against an S3
endpoint that enforces IAM, over HTTPS, on a bucket with versioning and a
default Object Lock. With that key a compromised DB host expires, deletes and
overwrites repo2; it cannot remove a locked version nor see the old ones;
the rebuild key brings the repository back as it was before, and a
point-in-time restore from it has what the damage took."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
from pathlib import Path

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError
from pgserver import free_port
from s3server import REGION, start_s3
from timetravel import STANZA, start_archiving

from pgharbor.cli import pgharbor_timetravel
from pgharbor.tiers.asof import AsOfError, rebuild
from pgharbor.timetravel.pastcopy import Target, restore_past
from pgharbor.timetravel.window import repo_states

DOC = Path(__file__).resolve().parents[2] / "docs" / "TIME_TRAVEL.md"
BUCKET = "timetravel-locked"
PREFIX = "timetravel/"  # repo2-path /timetravel, as tests/timetravel.py writes it


def documented(sid: str) -> dict:
    """The JSON block of docs/TIME_TRAVEL.md with the statement sid, for the test's bucket and path."""
    for block in re.findall(r"```json\n(.*?)```", DOC.read_text(), re.S):
        if f'"Sid": "{sid}"' in block:
            return json.loads(block.replace("acme-timetravel", BUCKET).replace("db1/", PREFIX))
    raise AssertionError(f"{DOC} has no JSON block with the {sid} statement")


@pytest.fixture(scope="module")
def locked():
    """A moto server of its own that enforces IAM: the locked bucket, the DB host's key, the
    rebuild key, and an inspector with every right (the test's own view behind the code)."""
    server = start_s3()
    try:
        server.bucket(BUCKET, object_lock=True)
        server.client().put_object_lock_configuration(Bucket=BUCKET, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 40}}})
        keys = server.enforce({"db1": documented("TimeTravelRepository"), "rebuild": documented("TimeTravelRebuild"),
                               "inspector": {"Version": "2012-10-17", "Statement": [
                                   {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}})
        yield server, keys
    finally:
        server.stop()


def client(server, key: tuple[str, str]):
    return boto3.client("s3", endpoint_url=server.url, region_name=REGION, aws_access_key_id=key[0],
                        aws_secret_access_key=key[1])


def denied(call) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def insert(arch, n: int) -> dt.datetime:
    with arch.connect("app") as conn:
        return conn.execute("INSERT INTO orders VALUES (%s) RETURNING clock_timestamp()", (n,)).fetchone()[0]


def settings_file(tmp_path: Path, arch, server) -> Path:
    """What the pg_timetravel role writes to /etc/pgharbor/timetravel.json, for this server and bucket."""
    path = tmp_path / "timetravel.json"
    path.write_text(json.dumps({
        "stanza": STANZA, "pgbackrest_config": arch.engine.config, "repos": [1, 2],
        "run_log": str(tmp_path / "runs.json"), "max_archive_age_minutes": 5, "db": arch.server.conninfo(),
        "tier3": {"bucket": BUCKET, "endpoint_url": server.https_url, "region": REGION, "path": "/timetravel",
                  "ca_file": server.ca_file, "path_style": True}}))
    return path


def test_the_db_hosts_key_destroys_nothing_and_the_rebuild_restores_as_of_before(locked, tmp_path, monkeypatch,
                                                                                 capsys):
    server, keys = locked
    arch = start_archiving(server, BUCKET, s3_key=keys["db1"])
    try:
        with arch.connect() as conn:
            conn.execute("CREATE DATABASE app")
        with arch.connect("app") as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        arch.engine.run("backup", "--repo=2", "--type=full")
        insert(arch, 1)
        time.sleep(1.1)
        between = arch.server_now()
        time.sleep(1.1)
        insert(arch, 2)
        arch.archived()
        arch.engine.run("backup", "--repo=2", "--type=full")
        insert(arch, 3)
        arch.archived()
        first_full = [s for s in repo_states(arch.engine) if s.repo == 2][0].backups[0].label
        time.sleep(1.1)
        before_damage = dt.datetime.now(dt.timezone.utc)
        time.sleep(1.1)

        # The damage, all with the DB host's own key: pgBackRest's expire (the first full and its
        # WAL go), then every object deleted, then backup.info overwritten.
        arch.engine.run("expire", "--repo=2", "--repo2-retention-full-type=count", "--repo2-retention-full=1")
        [repo2] = [s for s in repo_states(arch.engine) if s.repo == 2]
        assert [b.label for b in repo2.backups] != [first_full] and len(repo2.backups) == 1
        db1 = client(server, keys["db1"])
        current = [o["Key"] for page in db1.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX)
                   for o in page.get("Contents", [])]
        assert any(k.endswith("backup.info") for k in current)
        for key in current:
            db1.delete_object(Bucket=BUCKET, Key=key)
        db1.put_object(Bucket=BUCKET, Key=f"{PREFIX}backup/{STANZA}/backup.info", Body=b"not a backup.info")
        [repo2] = [s for s in repo_states(arch.engine) if s.repo == 2]
        assert not repo2.backups and "unable to load info file" in repo2.status

        # What the key cannot do: see the old versions, or remove one (IAM, then the lock).
        assert denied(lambda: db1.list_object_versions(Bucket=BUCKET, Prefix=PREFIX)) == "AccessDenied"
        inspector = client(server, keys["inspector"])
        version = inspector.list_object_versions(Bucket=BUCKET, Prefix=f"{PREFIX}archive/")["Versions"][0]
        assert denied(lambda: db1.delete_object(Bucket=BUCKET, Key=version["Key"],
                                                VersionId=version["VersionId"])) == "AccessDenied"
        assert inspector.head_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])

        # The DB host's key cannot rebuild either: it names the key that can.
        with pytest.raises(AsOfError, match="ListBucketVersions"):
            rebuild(db1, BUCKET, "/timetravel", before_damage, tmp_path / "nope")

        # The way back: the command, with the rebuild key in the environment, over HTTPS.
        settings = settings_file(tmp_path, arch, server)
        into = arch.home / "asof"  # where the postgres user reaches (tmp_path is root's alone)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["rebuild"][0])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["rebuild"][1])
        code = pgharbor_timetravel.main(["--config", str(settings), "rebuild", "--as-of",
                                         before_damage.isoformat(), "--into", str(into)])
        said = capsys.readouterr()
        assert code == 0, said.err
        assert re.search(r"rebuilt repo2 as of .* \d+ files, .* [1-9]\d* changed or deleted since", said.out)
        subprocess.run(["chown", "-R", "postgres:postgres", str(into)], check=True)

        rebuilt = arch.engine.at(2, into)
        [state] = [s for s in repo_states(rebuilt) if s.repo == 2]
        assert [b.label for b in state.backups][0] == first_full and len(state.backups) == 2
        copy, used = restore_past(rebuilt, [state], Target("time", between), arch.server.basedir / "asof-past",
                                  free_port(), 2, arch.engine.prefix)
        try:
            assert copy.record()["backup"] == first_full  # only the expired full reaches back to then
            with copy_connect(copy) as conn:
                assert [r[0] for r in conn.execute("SELECT id FROM orders ORDER BY id")] == [1]
        finally:
            copy.drop()
    finally:
        arch.remove()


def copy_connect(copy) -> psycopg.Connection:
    return psycopg.connect(copy.conninfo("app"), autocommit=True)


def test_a_rebuild_without_a_key_or_before_the_repository_existed_is_refused(locked, tmp_path, monkeypatch,
                                                                           capsys):
    server, keys = locked
    settings = tmp_path / "timetravel.json"
    settings.write_text(json.dumps({
        "stanza": STANZA, "pgbackrest_config": "/nonexistent",
        "tier3": {"bucket": BUCKET, "endpoint_url": server.https_url, "region": REGION, "path": "/timetravel",
                  "ca_file": server.ca_file, "path_style": True}}))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    argv = ["--config", str(settings), "rebuild", "--as-of", "2020-01-01 00:00:00+00:00", "--into", str(tmp_path / "x")]
    assert pgharbor_timetravel.main(argv) == 2
    assert "no S3 key for the rebuild: set AWS_ACCESS_KEY_ID" in capsys.readouterr().err

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["rebuild"][0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["rebuild"][1])
    assert pgharbor_timetravel.main(argv) == 2
    assert "held no pgBackRest repository at 2020-01-01 00:00:00 UTC" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
