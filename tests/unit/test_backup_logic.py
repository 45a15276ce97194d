"""Pure parts of the backup code: key listings, the manifest format,
choosing a backup, and what makes a tier unhealthy."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from pgharbor.backup.keys import parse_colons
from pgharbor.backup.manifest import ARTEFACT_SUFFIX, Manifest, ManifestError, TableEntry, backup_id
from pgharbor.backup.store import Store, StoreError
from pgharbor.tiers.health import tier_health

NOW = 1_800_000_000
FPR = "A" * 40


def colons(primary_validity="u", primary_expiry="", sub_validity="u", sub_expiry="", sub_caps="e"):
    return "\n".join([
        f"pub:{primary_validity}:255:22:AAAA:1700000000:{primary_expiry}::u:::scESC::::::23::0:",
        f"fpr:::::::::{FPR}:",
        "uid:u::::1700000000::HASH::ops <ops@example.test>::::::::::0:",
        f"sub:{sub_validity}:255:18:BBBB:1700000000:{sub_expiry}:::::{sub_caps}::::::23:",
        f"fpr:::::::::{'B' * 40}:",
    ])


def test_usable_key():
    key = parse_colons(colons(sub_expiry=str(NOW + 3600)), NOW)[FPR]
    assert key.can_encrypt and key.expires == NOW + 3600 and key.uids == ("ops <ops@example.test>",)


@pytest.mark.parametrize("kwargs, problem", [
    ({"sub_expiry": str(NOW - 1)}, "expired on"),
    ({"sub_validity": "r"}, "revoked"),
    ({"primary_validity": "e"}, "expired"),
    ({"sub_caps": "s"}, "has no encryption subkey"),
])
def test_unusable_keys(kwargs, problem):
    key = parse_colons(colons(**kwargs), NOW)[FPR]
    assert not key.can_encrypt and problem in key.problem


def manifest(started: datetime, database: str = "buffer") -> Manifest:
    bid = backup_id(database, started)
    return Manifest(id=bid, database=database, server="db1", server_version="15.8", started=started.isoformat(),
                    finished=started.isoformat(), snapshot="00000003-1", tools={}, compression={}, encryption={},
                    artefact=bid + ARTEFACT_SUFFIX, size=3, sha256="0" * 64,
                    tables={"buffer.customers": TableEntry(10)})


def test_manifest_round_trip_and_validation():
    m = manifest(datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc))
    assert m.id == "buffer-20261124T100000Z"
    assert Manifest.from_json(m.to_json()) == m
    data = json.loads(m.to_json())
    for broken, message in [({**data, "format": "other"}, "not a pgharbor-backup/1"),
                            ({**data, "artefact": "../../etc/passwd"}, "bad id or artefact"),
                            ({**data, "sha256": "xyz"}, "SHA-256"),
                            ({k: v for k, v in data.items() if k != "size"}, "missing or unknown field")]:
        with pytest.raises(ManifestError, match=message):
            Manifest.from_json(json.dumps(broken))
    assert backup_id("my db/1", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)) == "my_db_1-20260102T030405Z"


def stored(tmp_path, *hours_ago: int) -> Store:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for h in hours_ago:
        m = manifest(now - timedelta(hours=h))
        (tmp_path / m.artefact).write_bytes(b"abc")
        (tmp_path / (m.id + ".manifest.json")).write_text(m.to_json())
    return Store(tmp_path)


def test_choose_latest_id_and_before(tmp_path):
    store = stored(tmp_path, 5, 3, 1)
    ids = [b.id for b in store.backups()]
    assert store.choose("latest").id == ids[-1]
    assert store.choose(ids[0]).id == ids[0]
    limit = (datetime.now(timezone.utc) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S")
    assert store.choose(f"before:{limit}").id == ids[1]
    with pytest.raises(StoreError, match="started before"):
        store.choose("before:2000-01-01T00:00:00Z")
    with pytest.raises(StoreError, match="give before:<ISO time>"):
        store.choose("before:yesterday")
    with pytest.raises(StoreError, match="no complete backup 'nope'"):
        store.choose("nope")


def test_artefact_without_manifest_or_wrong_size_is_not_a_backup(tmp_path):
    store = stored(tmp_path, 2, 1)
    newest = store.backups()[-1]
    newest.artefact.write_bytes(b"abcd")  # not the recorded size
    (tmp_path / ("buffer-20260101T000000Z" + ARTEFACT_SUFFIX)).write_bytes(b"x")
    assert [b.id for b in store.backups()] == [store.backups()[0].id]
    assert len(store.debris()) == 2


def test_health(tmp_path):
    now = datetime.now(timezone.utc)
    empty = tier_health(str(tmp_path), 2, now)
    assert not empty["healthy"] and "no backup in" in empty["problems"][0]
    store = stored(tmp_path, 3)
    old = tier_health(str(tmp_path), 2, now)
    assert not old["healthy"] and "more than 2 h (pg_backup_max_age_hours)" in old["problems"][0]
    assert tier_health(str(tmp_path), 4, now)["healthy"]
    store.write_status({"result": "failed", "error": "cannot connect"})
    failed = tier_health(str(tmp_path), 4, now)
    assert not failed["healthy"] and failed["problems"] == ["the last run failed: cannot connect"]
