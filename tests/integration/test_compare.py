"""pg_compare's schema half between two real servers: the migrated awkward
database compares equal, and each kind of schema difference is named."""

from __future__ import annotations

import pytest
from migrationdb import DBNAME, OWNER

from pgharbor.migration.compare import compare
from pgharbor.migration.migrate import migrate


@pytest.fixture
def migrated(servers, tmp_path):
    migrate(servers.source_conninfo(), servers.target_conninfo(), target_role=OWNER)
    return servers


def test_the_migrated_database_is_equal_in_schema_and_data(migrated):
    report = compare(migrated.source_conninfo(), migrated.target_conninfo())
    assert report.equal, "\n".join(report.differences()) + "\n" + report.schema.diff_text()
    counts = report.schema.counts
    assert counts["tables"] >= 12 and counts["indexes"] >= 5 and counts["triggers"] == 1
    assert counts["views"] == 2 and counts["functions"] >= 1 and counts["types"] == 3
    assert report.as_dict()["differences"] == []


@pytest.mark.parametrize(
    ("side", "statement", "expected"),
    [
        ("target", "DROP INDEX app.events_payload", ["indexes:", "  - app.events_payload"]),
        ("target", "ALTER TABLE app.nokey ALTER COLUMN b TYPE varchar(10)",
         ["columns:", "  ~ app.nokey.b", "      source: text #2", "      target: character varying(10) #2"]),
        ("target", "ALTER TABLE app.events DROP CONSTRAINT events_ref_fkey", ["constraints:",
                                                                             "  - app.events events_ref_fkey"]),
        ("target", "CREATE OR REPLACE FUNCTION app.count_event() RETURNS trigger LANGUAGE plpgsql AS "
                   "$$BEGIN RETURN NEW; END$$", ["functions:", "  ~ app.count_event()"]),
        ("target", "DROP TRIGGER events_audit ON app.events", ["triggers:", "  - app.events events_audit"]),
        ("target", "ALTER TYPE app.mood ADD VALUE 'ecstatic'", ["types:", "  ~ app.mood"]),
        ("source", "CREATE ROLE reporter; GRANT SELECT ON app.events TO reporter",
         ["grants:", "  - app.events to reporter"]),
        ("target", "CREATE VIEW app.extra AS SELECT 1 AS one", ["views:", "  + app.extra"]),
    ],
    ids=["index", "column-type", "constraint", "function-body", "trigger", "enum-label", "grant", "extra-view"],
)
def test_each_schema_difference_is_named(migrated, side, statement, expected):
    server = migrated.target if side == "target" else migrated.source
    with server.connect(DBNAME, autocommit=True) as conn:
        conn.execute(statement)
    report = compare(migrated.source_conninfo(), migrated.target_conninfo())
    assert not report.equal
    text = report.schema.diff_text().splitlines()
    start = text.index(expected[0])
    assert text[start:start + len(expected)] == expected, report.schema.diff_text()
    assert any(line.startswith(f"schema {expected[0].rstrip(':')}") for line in report.differences())


def test_grants_compare_through_the_role_map(migrated):
    """The source grants to its own roles; the target to its own: mapped, equal."""
    with migrated.source.connect(DBNAME, autocommit=True) as conn:
        conn.execute("CREATE ROLE legacy_reader; GRANT SELECT ON app.events TO legacy_reader")
    with migrated.target.connect(DBNAME, autocommit=True) as conn:
        conn.execute("CREATE ROLE app_ro; GRANT SELECT ON app.events TO app_ro")
        conn.execute("CREATE ROLE app_monitor; GRANT SELECT ON app.audit TO app_monitor")
    report = compare(migrated.source_conninfo(), migrated.target_conninfo(),
                     role_map={"legacy_reader": "app_ro"}, ignore_roles=["app_monitor"])
    assert report.schema.equal, report.schema.diff_text()
