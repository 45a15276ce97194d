"""pg_preflight between two real servers: what it finds in the awkward
database, and each blocking problem named with its fix."""

from __future__ import annotations

import pytest
from migrationdb import DBNAME, MIGRATOR, OWNER
from psycopg import sql

from pgharbor.migration.preflight import preflight


def verdicts(report) -> dict[str, str]:
    return {c.name: c.verdict for c in report.checks}


def check(report, name):
    return next(c for c in report.checks if c.name == name)


def test_the_awkward_database_passes_with_warnings(servers):
    report = preflight(servers.source_conninfo(), servers.target_conninfo(verified=True), target_role=OWNER,
                       target_free_bytes=10 << 30)
    print(report.summary())
    assert report.ok, report.summary()
    found = verdicts(report)
    assert found["target TLS"] == "ok" and "verify-full" in check(report, "target TLS").detail
    # The test source is reached over TCP without TLS (in the lab it is a local socket).
    assert found["source TLS"] == "warn" and "not encrypted" in check(report, "source TLS").detail
    for name in ("server versions", "encoding", "locale and collation", "extensions", "target database empty",
                 "target disk", "row-level security", "target owner role", "object owners"):
        assert found[name] == "ok", check(report, name)
    # What the awkward database holds that the operator should know about.
    assert "app.nokey" in check(report, "primary keys").detail and found["primary keys"] == "warn"
    assert "app.scratch" in check(report, "unlogged tables").detail
    detail = check(report, "reg* columns").detail
    assert "app.refs.rel" in detail and "app.refs.rels" in detail
    assert "app.documents.blob" in check(report, "oid columns").detail
    assert check(report, "large objects").detail == "2, copied with their OIDs"
    assert report.source_bytes > 1 << 20


def test_a_target_without_verified_tls_fails_naming_sslmode(servers):
    report = preflight(servers.source_conninfo(), servers.target_conninfo() + " sslmode=require", target_role=OWNER)
    tls = check(report, "target TLS")
    assert tls.verdict == "fail" and "not verified" in tls.detail
    assert "sslmode=verify-full" in tls.fix and "sslrootcert" in tls.fix
    assert check(report, "target disk").verdict == "warn" and "target_free_bytes" in check(report, "target disk").fix


def test_unreachable_ends_are_named_and_the_rest_still_reported(servers):
    report = preflight(servers.source_conninfo(), servers.target_conninfo(password="wrong"))
    reach = check(report, "target reachable")
    assert reach.verdict == "fail" and f'password authentication failed for user "{MIGRATOR}"' in reach.detail
    assert "password" in reach.fix
    assert verdicts(report)["primary keys"] == "warn"  # source-only checks still ran
    assert "target database empty" not in verdicts(report)


@pytest.mark.parametrize(
    ("on_target", "on_source", "name", "detail", "fix"),
    [
        ("CREATE TABLE app.leftover (id integer)", None, "target database empty", "app.leftover", "rollback.yml"),
        (None, "CREATE EXTENSION pageinspect", "extensions", "pageinspect", "CREATE EXTENSION"),
        (None, "CREATE ROLE reader; GRANT SELECT ON app.events TO reader", "granted privileges", "reader",
         "postgresql_server_users"),
    ],
    ids=["target-not-empty", "untrusted-extension", "grants-not-copied"],
)
def test_each_problem_is_named_with_its_fix(servers, on_target, on_source, name, detail, fix):
    for server, statement in ((servers.target, on_target), (servers.source, on_source)):
        if statement:
            with server.connect(DBNAME, autocommit=True) as conn:
                conn.execute(statement)
    report = preflight(servers.source_conninfo(), servers.target_conninfo(verified=True), target_role=OWNER,
                       target_free_bytes=10 << 30)
    found = check(report, name)
    assert found.verdict in ("fail", "warn") and detail in found.detail and fix in found.fix, found


def test_a_source_role_that_policies_restrict_fails(servers):
    with servers.source.connect(DBNAME, autocommit=True) as conn:
        conn.execute("CREATE ROLE limited LOGIN PASSWORD 'limited-pw'")
        conn.execute("GRANT USAGE ON SCHEMA app TO limited; GRANT SELECT ON ALL TABLES IN SCHEMA app TO limited")
    report = preflight(servers.source.conninfo(DBNAME, user="limited", password="limited-pw"),
                       servers.target_conninfo(verified=True), target_role=OWNER, target_free_bytes=10 << 30)
    rls = check(report, "row-level security")
    assert rls.verdict == "fail" and "app.secrets" in rls.detail and "BYPASSRLS" in rls.fix
    large_objects = check(report, "large objects")
    assert large_objects.verdict == "fail" and "may not read 2 of 2" in large_objects.detail
    assert not report.ok


def test_too_little_disk_and_a_missing_owner_role_fail(servers):
    with servers.target.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE outsider LOGIN PASSWORD 'outsider-pw'"))
    report = preflight(servers.source_conninfo(),
                       servers.target.conninfo(DBNAME, user="outsider", password="outsider-pw"),
                       target_role=OWNER, target_free_bytes=1 << 20, require_verified_tls=False)
    assert check(report, "target disk").verdict == "fail"
    assert "postgresql_server_data_dir" in check(report, "target disk").fix
    owner = check(report, "target owner role")
    assert owner.verdict == "fail" and "outsider may not act as app_owner" in owner.detail
    assert "migrator profile" in owner.fix
