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
    assert counts["views"] == 2 and counts["functions"] >= 1 and counts["types"] == 5
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
        # changes that leave the definition text alone
        ("target", "ALTER TABLE app.events DISABLE TRIGGER events_audit", ["triggers:", "  ~ app.events events_audit"]),
        ("target", "ALTER TABLE app.events ENABLE ALWAYS TRIGGER events_audit",
         ["triggers:", "  ~ app.events events_audit"]),
        ("target", "ALTER TABLE app.stateful REPLICA IDENTITY DEFAULT", ["tables:", "  ~ app.stateful"]),
        ("target", "ALTER TABLE app.stateful RESET (fillfactor)", ["tables:", "  ~ app.stateful"]),
        ("target", "ALTER TABLE app.stateful ALTER COLUMN note SET STORAGE MAIN",
         ["columns:", "  ~ app.stateful.note"]),
        ("target", "ALTER TABLE app.stateful ALTER COLUMN note SET STATISTICS -1",
         ["columns:", "  ~ app.stateful.note"]),
        ("target", "ALTER TABLE app.stateful ALTER COLUMN note SET COMPRESSION lz4",
         ["columns:", "  ~ app.stateful.note"]),
        ("target", "ALTER TABLE app.stateful ALTER COLUMN note SET (n_distinct = 5)",
         ["columns:", "  ~ app.stateful.note"]),
        ("target", "COMMENT ON COLUMN app.stateful.note IS 'changed'",
         ["comments:", "  ~ column note of table app.stateful"]),
        ("target", "COMMENT ON TABLE app.stateful IS NULL", ["comments:", "  - table app.stateful"]),
        ("target", "ALTER TABLE app.stateful DISABLE RULE stateful_keep", ["rules:", "  ~ app.stateful stateful_keep"]),
        ("target", "DROP RULE stateful_keep ON app.stateful", ["rules:", "  - app.stateful stateful_keep"]),
        ("target", "ALTER TABLE app.stateful CLUSTER ON stateful_pkey", ["indexes:", "  ~ app.stateful_pkey"]),
        ("target", "ALTER SEQUENCE app.invoice_no OWNED BY app.stateful.id", ["sequences:", "  ~ app.invoice_no"]),
        ("target", "ALTER VIEW app.recent SET (security_barrier = true)", ["views:", "  ~ app.recent"]),
        ("target", "REFRESH MATERIALIZED VIEW app.event_count WITH NO DATA", ["views:", "  ~ app.event_count"]),
        ("target", "ALTER DOMAIN app.label DROP NOT NULL", ["types:", "  ~ app.label"]),
        ("target", "ALTER DOMAIN app.label SET DEFAULT 'other'", ["types:", "  ~ app.label"]),
        ("target", "ALTER TYPE app.pair ADD ATTRIBUTE c date", ["columns:", "  + app.pair.c"]),
        ("target", "DROP TYPE app.floatrange; CREATE TYPE app.floatrange AS RANGE (subtype = float8)",
         ["types:", "  ~ app.floatrange"]),
        # what a failed CREATE INDEX CONCURRENTLY leaves: pg_dump would not reproduce it
        ("target", "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'app.stateful_pkey'::regclass",
         ["indexes:", "  ~ app.stateful_pkey"]),
    ],
    ids=["index", "column-type", "constraint", "function-body", "trigger", "enum-label", "grant", "extra-view",
         "trigger-disabled", "trigger-always", "replica-identity", "storage-parameter", "column-storage",
         "column-statistics", "column-compression", "column-option", "comment-changed", "comment-removed",
         "rule-disabled", "rule-dropped", "clustered-on", "sequence-owned-by", "view-option", "matview-not-populated",
         "domain-not-null", "domain-default", "composite-attribute-added",
         "range-subdiff", "invalid-index"],
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


def test_a_materialized_view_that_holds_other_rows_is_named(migrated):
    """The tables are equal again, but the target's materialized view was
    refreshed in between: its definition is the same, its rows are not."""
    with migrated.target.connect(DBNAME, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # the audit trigger stays out of it
        conn.execute("INSERT INTO app.events (id, payload) VALUES (999999, '{}')")
        conn.execute("REFRESH MATERIALIZED VIEW app.event_count")
        conn.execute("DELETE FROM app.events WHERE id = 999999")
    report = compare(migrated.source_conninfo(), migrated.target_conninfo())
    assert report.schema.equal, report.schema.diff_text()
    assert [t.table for t in report.data.tables if not t.equal] == ["app.event_count"], report.differences()


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
