"""pg_compare between two real servers: the migrated awkward database
compares equal, and each change made to a copy of one side afterwards (a
schema property, an owner, a grant, a value) makes it unequal and is named.

The awkward database is migrated once per module; each change is made on a
copy (CREATE DATABASE ... TEMPLATE) and compared with the other side's
original, so every case starts from the same migrated state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from migrationdb import DBNAME, OWNER, Pair
from pgserver import SUPERUSER

from pgharbor.migration.compare import CompareReport, compare
from pgharbor.migration.migrate import migrate

# The source's objects are the superuser's; the migration gives them to OWNER.
ROLE_MAP = {SUPERUSER: OWNER}
COPY = "mutant"


@pytest.fixture(scope="module")
def migrated(module_servers) -> Pair:
    migrate(module_servers.source_conninfo(), module_servers.target_conninfo(), target_role=OWNER)
    for server in (module_servers.source, module_servers.target):
        with server.connect(autocommit=True) as conn:
            conn.execute("CREATE ROLE reporter")
    return module_servers


@pytest.fixture
def changed(migrated) -> Iterator:
    """changed(side, statement): the statement run on a copy of that side's
    database, compared with the other side's original."""
    copies = []

    def run(side: str, statement: str) -> CompareReport:
        server = migrated.target if side == "target" else migrated.source
        with server.connect(autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {COPY} TEMPLATE {DBNAME}")
        copies.append(server)
        with server.connect(COPY, autocommit=True) as conn:
            conn.execute(statement)
        return compare(migrated.source_conninfo(COPY if side == "source" else DBNAME),
                       migrated.target_conninfo(dbname=COPY if side == "target" else DBNAME), role_map=ROLE_MAP)

    yield run
    for server in copies:
        with server.connect(autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {COPY} WITH (FORCE)")


def test_the_migrated_database_is_equal_in_schema_and_data(migrated):
    report = compare(migrated.source_conninfo(), migrated.target_conninfo(), role_map=ROLE_MAP)
    assert report.equal, "\n".join(report.differences()) + "\n" + report.schema.diff_text()
    counts = report.schema.counts
    assert counts["tables"] >= 12 and counts["indexes"] >= 5 and counts["triggers"] == 1
    assert counts["views"] == 2 and counts["functions"] >= 1 and counts["types"] == 5
    for kind in ("aggregates", "statistics", "collations", "casts", "operators", "text search configurations",
                 "text search dictionaries", "publications"):
        assert counts[kind] == 1, kind
    assert counts["owners"] > 30 and counts["grants"] > 30
    assert report.as_dict()["differences"] == []


def test_without_the_role_map_every_owner_differs(migrated):
    report = compare(migrated.source_conninfo(), migrated.target_conninfo())
    owners = next(kind for kind in report.schema.kinds if kind.kind == "owners")
    assert len(owners.changed) > 30
    assert ("table app.events", SUPERUSER, OWNER) in owners.changed


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
        ("source", "GRANT SELECT ON app.events TO reporter", ["grants:", "  - table app.events to reporter"]),
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
        ("target", "ALTER POLICY only_alice ON app.secrets USING (owner_name = 'bob')",
         ["policies:", "  ~ app.secrets only_alice"]),
        ("target", "CREATE EXTENSION citext", ["extensions:", "  + citext"]),
        ("target", "CREATE SCHEMA extra", ["schemas:", "  + extra"]),
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
        # owners, through the role map, and grants on everything that has them
        # (the comparison reads as the owner role: a grant lets it read what reporter owns now)
        ("target", "ALTER TABLE app.stateful OWNER TO reporter; GRANT SELECT ON app.stateful TO app_owner",
         ["owners:", "  ~ table app.stateful", f"      source: {OWNER}", "      target: reporter"]),
        ("target", "ALTER FUNCTION app.same_length(text, text) OWNER TO reporter",
         ["owners:", "  ~ function app.same_length(text,text)"]),
        ("target", "ALTER LARGE OBJECT 424242 OWNER TO reporter; GRANT SELECT ON LARGE OBJECT 424242 TO app_owner",
         ["owners:", "  ~ large object 424242"]),
        ("target", "REVOKE EXECUTE ON FUNCTION app.same_length(text, text) FROM PUBLIC",
         ["grants:", "  - function app.same_length(text,text) to PUBLIC"]),
        ("target", "GRANT USAGE ON SCHEMA app TO reporter", ["grants:", "  + schema app to reporter"]),
        ("target", "REVOKE USAGE ON TYPE app.mood FROM PUBLIC", ["grants:", "  - type app.mood to PUBLIC"]),
        ("target", "GRANT UPDATE (note) ON app.stateful TO reporter",
         ["grants:", "  + column note of table app.stateful to reporter"]),
        ("target", "GRANT SELECT ON LARGE OBJECT 424242 TO reporter",
         ["grants:", "  + large object 424242 to reporter"]),
        ("target", "ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO reporter",
         ["grants:", f"  + default privileges on tables of {SUPERUSER} in schema app to reporter"]),
        # the rarer kinds
        ("target", "DROP AGGREGATE app.concat_all(text); "
                   "CREATE AGGREGATE app.concat_all(text) (sfunc = textcat, stype = text, initcond = '-')",
         ["aggregates:", "  ~ function app.concat_all(text)"]),
        ("target", "ALTER STATISTICS app.stateful_stats SET STATISTICS 50",
         ["statistics:", "  ~ statistics object app.stateful_stats"]),
        ("target", "CREATE COLLATION app.bytes (locale = 'C')", ["collations:", "  + collation app.bytes"]),
        ("target", "DROP CAST (app.pair AS text); CREATE CAST (app.pair AS text) WITH FUNCTION app.pair_text(app.pair) "
                   "AS IMPLICIT", ["casts:", "  ~ cast from app.pair to text"]),
        ("target", "ALTER OPERATOR app.~= (text, text) SET (RESTRICT = eqsel)",
         ["operators:", "  ~ operator app.~=(text,text)"]),
        ("target", "CREATE OPERATOR CLASS app.text_hash FOR TYPE text USING hash AS OPERATOR 1 =, "
                   "FUNCTION 1 hashtext(text)",
         ["operator classes:", "  + operator class app.text_hash for access method hash"]),
        ("target", "CREATE OPERATOR FAMILY app.empty USING btree",
         ["operator families:", "  + operator family app.empty for access method btree"]),
        ("target", "CREATE CONVERSION app.latin FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8",
         ["conversions:", "  + conversion app.latin"]),
        ("target", "CREATE FUNCTION app.pl_handler() RETURNS language_handler AS '$libdir/plpgsql', "
                   "'plpgsql_call_handler' LANGUAGE c; CREATE LANGUAGE app_pl HANDLER app.pl_handler",
         ["languages:", "  + language app_pl"]),
        ("target", "ALTER TEXT SEARCH CONFIGURATION app.plain DROP MAPPING FOR word",
         ["text search configurations:", "  ~ text search configuration app.plain"]),
        ("target", "ALTER TEXT SEARCH DICTIONARY app.plain (ACCEPT = false)",
         ["text search dictionaries:", "  ~ text search dictionary app.plain"]),
        ("target", "CREATE TEXT SEARCH PARSER app.words (START = prsd_start, GETTOKEN = prsd_nexttoken, "
                   "END = prsd_end, LEXTYPES = prsd_lextype)",
         ["text search parsers:", "  + text search parser app.words"]),
        ("target", "CREATE TEXT SEARCH TEMPLATE app.bare (LEXIZE = dsimple_lexize)",
         ["text search templates:", "  + text search template app.bare"]),
        ("target", "CREATE FOREIGN DATA WRAPPER app_fdw OPTIONS (debug 'true')",
         ["foreign-data wrappers:", "  + foreign-data wrapper app_fdw"]),
        ("target", "CREATE FOREIGN DATA WRAPPER app_fdw; CREATE SERVER app_srv FOREIGN DATA WRAPPER app_fdw; "
                   "CREATE FOREIGN TABLE app.remote (a integer OPTIONS (name 'x')) SERVER app_srv OPTIONS (t 'y')",
         ["tables:", "  + app.remote"]),
        ("target", "CREATE FOREIGN DATA WRAPPER app_fdw; CREATE SERVER app_srv FOREIGN DATA WRAPPER app_fdw; "
                   "CREATE USER MAPPING FOR reporter SERVER app_srv OPTIONS (password 'never-shown')",
         ["foreign servers:", "  + server app_srv"]),
        ("target", "CREATE FUNCTION app.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN END$$; "
                   "CREATE EVENT TRIGGER app_ddl ON ddl_command_start EXECUTE FUNCTION app.on_ddl()",
         ["event triggers:", "  + event trigger app_ddl"]),
        ("target", "ALTER PUBLICATION app_changes SET (publish = 'insert')",
         ["publications:", "  ~ publication app_changes"]),
        ("target", "ALTER PUBLICATION app_changes ADD TABLE app.nokey",
         ["publications:", "  ~ publication app_changes"]),
        ("target", "CREATE ACCESS METHOD app_heap TYPE TABLE HANDLER heap_tableam_handler; "
                   "ALTER TABLE app.stateful SET ACCESS METHOD app_heap", ["tables:", "  ~ app.stateful"]),
    ],
    ids=["index", "column-type", "constraint", "function-body", "trigger", "enum-label", "grant", "extra-view",
         "trigger-disabled", "trigger-always", "replica-identity", "storage-parameter", "column-storage",
         "column-statistics", "column-compression", "column-option", "comment-changed", "comment-removed",
         "rule-disabled", "rule-dropped", "clustered-on",
         "policy", "extension", "schema", "sequence-owned-by", "view-option", "matview-not-populated",
         "domain-not-null", "domain-default", "composite-attribute-added",
         "range-subdiff", "invalid-index",
         "owner-table", "owner-function", "owner-large-object", "grant-function", "grant-schema", "grant-type",
         "grant-column", "grant-large-object", "default-privileges",
         "aggregate", "statistics", "collation", "cast", "operator", "operator-class", "operator-family", "conversion",
         "language", "ts-config-mapping", "ts-dictionary-option", "ts-parser", "ts-template", "fdw", "foreign-table",
         "foreign-server", "event-trigger", "publication-actions", "publication-tables", "table-access-method"],
)
def test_each_schema_difference_is_named(changed, side, statement, expected):
    report = changed(side, statement)
    assert not report.equal
    text = report.schema.diff_text().splitlines()
    start = text.index(expected[0])
    assert text[start:start + len(expected)] == expected, report.schema.diff_text()
    assert any(line.startswith(f"schema {expected[0].rstrip(':')}") for line in report.differences())


def test_a_user_mappings_options_are_compared_by_name_only(changed):
    report = changed("target", "CREATE FOREIGN DATA WRAPPER app_fdw; "
                               "CREATE SERVER app_srv FOREIGN DATA WRAPPER app_fdw; "
                               "CREATE USER MAPPING FOR reporter SERVER app_srv OPTIONS (password 'never-shown')")
    text = report.schema.diff_text()
    assert "  + for reporter server app_srv" in text.splitlines()
    assert "never-shown" not in text and "never-shown" not in str(report.as_dict())


def test_a_materialized_view_that_holds_other_rows_is_named(changed):
    """The tables are equal again, but the target's materialized view was
    refreshed in between: its definition is the same, its rows are not."""
    report = changed("target", "SET session_replication_role = replica; "  # the audit trigger stays out of it
                               "INSERT INTO app.events (id, payload) VALUES (999999, '{}'); "
                               "REFRESH MATERIALIZED VIEW app.event_count; DELETE FROM app.events WHERE id = 999999")
    assert report.schema.equal, report.schema.diff_text()
    assert [t.table for t in report.data.tables if not t.equal] == ["app.event_count"], report.differences()


# Values that the type's equality operator (or its hash opclass) calls equal,
# or that a careless text rendering would merge, and that a dump keeps apart;
# and a plain change in every other value family of the awkward database.
VALUES = [
    ("UPDATE app.folded SET name = 'ALICE' WHERE id = 1", "app.folded"),  # = under a case-folding collation
    ("UPDATE app.measurements SET value = 1.0 WHERE value = 1", "app.measurements_2024"),  # numeric scale
    ("UPDATE app.everything SET f8 = 0 WHERE f4 = '-Infinity'", "app.everything"),  # -0 = 0
    ("UPDATE app.everything SET iv = '358 days 03:00:00.5' WHERE i2 = -32768", "app.everything"),  # 1 year = 360 days
    ("UPDATE app.everything SET jb = '{\"z\": null, \"a\": {\"n\": 1.5}}' WHERE i2 = -32768",
     "app.everything"),  # jsonb 1.50 = 1.5
    ("UPDATE app.everything SET j = '{\"b\":1,\"a\":[1,2]}' WHERE i2 = -32768", "app.everything"),  # json spacing
    ("UPDATE app.everything SET pt = '(1.5,-2.00000000001)' WHERE i2 = -32768", "app.everything"),  # point ~= fuzzy
    ("UPDATE app.everything SET arr = '[0:2]={1,NULL,3}' WHERE i2 = -32768", "app.everything"),  # array bounds
    ("UPDATE app.everything SET tstz = tstz + interval '1 microsecond' WHERE i2 = -32768", "app.everything"),
    ("UPDATE app.everything SET ts = ts - interval '1 microsecond' WHERE i2 = -32768", "app.everything"),
    ("UPDATE app.everything SET by = '\\x00ff11' WHERE i2 = -32768", "app.everything"),
    ("UPDATE app.everything SET x = '<a x=\"1\">e</a>' WHERE i2 = -32768", "app.everything"),
    ("UPDATE app.everything SET ip = '2001:db8::1/65' WHERE i2 = -32768", "app.everything"),
    ("UPDATE app.everything SET mood = 'ok', pr = ROW(1, 'One'), rng = '[1,11)' WHERE i2 = -32768", "app.everything"),
    ("UPDATE app.everything SET tarr = '{\"a,b\",\"c\\\"d\",\"NULL\"}' WHERE i2 = -32768",
     "app.everything"),  # the string 'NULL' against a NULL element
    ("UPDATE app.everything SET t = t || ' ' WHERE i2 = 1", "app.everything"),  # a toasted value, one byte longer
    ("UPDATE app.refs SET rel = 'app.audit'", "app.refs"),
    ("UPDATE app.secrets SET secret = 'B' WHERE owner_name = 'bob'", "app.secrets"),  # hidden by its policy
    ("UPDATE \"Odd Schema ü\".\"Mixed Case ö\" SET \"ß\" = 3 WHERE \"ß\" = 2", "Odd Schema ü.Mixed Case ö"),
    ("UPDATE app.nokey SET b = 'y' WHERE ctid = (SELECT min(ctid) FROM app.nokey WHERE b = 'x')", "app.nokey"),
    # one plain change in each remaining column type of app.everything
    *((f"UPDATE app.everything SET {change} WHERE i2 = -32768", "app.everything") for change in (
        "i8 = i8 + 1", "i4 = i4 - 1", "f4 = 1.5", "num = num + 0.0000000001", "vc = 'ü€'", "ch = 'ba'", "b = false",
        "d = '0001-01-02'", "tm = '23:59:59'", "tmtz = '12:00:00+13'", "u = 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'",
        "cidr_ = '10.0.0.0/9'", "mac = '08:00:2b:01:02:04'", "moods = '{ok,sad}'", "pos = 8", "money_ = 12.35",
        "bits = B'1010'")),
]


@pytest.mark.parametrize(("statement", "table"), VALUES, ids=[
    "collation-equal-text", "numeric-scale", "negative-zero", "interval-units", "jsonb-numeric", "json-spacing",
    "point-fuzzy", "array-bounds", "timestamptz", "timestamp", "bytea", "xml", "inet", "enum-composite-range",
    "null-string-in-array", "toasted-text", "regclass", "row-security", "quoted-names", "duplicate-rows",
    "bigint", "integer-and-generated", "real", "numeric", "varchar", "char", "boolean", "date", "time", "timetz",
    "uuid", "cidr", "macaddr", "enum-array", "domain", "money", "bit-varying"])
def test_each_changed_value_is_named(changed, statement, table):
    report = changed("target", "SET session_replication_role = replica; " + statement)
    assert report.schema.equal, report.schema.diff_text()
    assert [t.table for t in report.data.tables if not t.equal] == [table], report.differences()
    assert any(line.startswith(f"table {table}:") for line in report.differences())


def test_a_changed_large_object_is_named(changed):
    report = changed("target", "SELECT lo_put(424242, 0, 'j')")
    assert not report.equal and report.data.large_objects, report.differences()
    assert any("424242" in line for line in report.data.large_objects)


def test_a_changed_sequence_is_named(changed):
    report = changed("target", "SELECT setval('app.invoice_no', 5000)")
    assert not report.equal and any("app.invoice_no" in line for line in report.data.sequences), report.differences()


def test_grants_compare_through_the_role_map(servers):
    """The source grants to its own roles; the target to its own: mapped, equal."""
    migrate(servers.source_conninfo(), servers.target_conninfo(), target_role=OWNER)
    with servers.source.connect(DBNAME, autocommit=True) as conn:
        conn.execute("CREATE ROLE legacy_reader; GRANT SELECT ON app.events TO legacy_reader")
    with servers.target.connect(DBNAME, autocommit=True) as conn:
        conn.execute("CREATE ROLE app_ro; GRANT SELECT ON app.events TO app_ro")
        conn.execute("CREATE ROLE app_monitor; GRANT SELECT ON app.audit TO app_monitor")
    report = compare(servers.source_conninfo(), servers.target_conninfo(),
                     role_map={"legacy_reader": "app_ro", **ROLE_MAP}, ignore_roles=["app_monitor"])
    assert report.schema.equal, report.schema.diff_text()
