"""Read-only checks before a migration: can it work, and what will it change?

Every check ends in a verdict: ``ok``, ``warn`` (the migration works, the
operator should know) or ``fail`` (the migration would fail or lose
something). Each problem names the setting or the command that fixes it.
Nothing is written on either end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import psycopg

from ..pg import catalog
from ..pg.session import connect
from ..pg.tls import on_socket, ssl_state

OK, WARN, FAIL = "ok", "warn", "fail"
SHOWN = 10  # names listed per check; the count says how many there are


@dataclass
class Check:
    name: str
    verdict: str
    detail: str
    fix: str = ""


@dataclass
class PreflightReport:
    checks: list[Check] = field(default_factory=list)
    source_bytes: int = 0

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failed

    def add(self, name: str, verdict: str, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, verdict, detail, fix if verdict != OK else ""))

    def as_dict(self) -> dict:
        return {"ok": self.ok, "source_bytes": self.source_bytes, "checks": [asdict(c) for c in self.checks]}

    def summary(self) -> str:
        lines = [f"{c.verdict.upper():4} {c.name}: {c.detail}" + (f" -> {c.fix}" if c.fix else "")
                 for c in self.checks]
        return "\n".join(lines)


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _check_tls(report: PreflightReport, end: str, conn: psycopg.Connection, setting: str,
               require_verified: bool) -> None:
    if on_socket(conn.info.host):
        report.add(f"{end} TLS", OK, "local socket: no network to protect")
        return
    state = ssl_state(conn)
    encrypted, details = state.in_use, f"{state.version} {state.cipher}" if state.in_use else ""
    sslmode = conn.info.get_parameters().get("sslmode", "prefer")
    if encrypted and sslmode == "verify-full":
        report.add(f"{end} TLS", OK, f"{details}, server certificate verified (verify-full)")
    elif not require_verified and encrypted:
        report.add(f"{end} TLS", WARN, f"{details}, but sslmode={sslmode} does not verify the server",
                   f"set sslmode=verify-full and sslrootcert in {setting}")
    else:
        report.add(f"{end} TLS", FAIL if require_verified else WARN,
                   f"sslmode={sslmode}, " + (f"{details}: the server certificate is not verified" if encrypted
                                             else "the connection is not encrypted"),
                   f"set sslmode=verify-full and sslrootcert (the CA of the server's certificate) in {setting}")


def _database_facts(conn: psycopg.Connection) -> dict:
    row = conn.execute(
        """SELECT pg_encoding_to_char(encoding), datcollate, datctype, datlocprovider,
                  pg_database_size(oid) FROM pg_database WHERE datname = current_database()""").fetchone()
    return {"encoding": row[0], "collate": row[1], "ctype": row[2],
            "provider": {"c": "libc", "i": "icu"}.get(row[3], row[3]), "bytes": int(row[4])}


def _check_versions(report: PreflightReport, src: psycopg.Connection, dst: psycopg.Connection) -> None:
    source, target = src.info.server_version, dst.info.server_version
    detail = f"source {source // 10000}.{source % 10000}, target {target // 10000}.{target % 10000}"
    if target // 10000 >= source // 10000:
        report.add("server versions", OK, detail)
    else:
        report.add("server versions", FAIL, detail + ": a dump does not restore into an older major version",
                   "install a target PostgreSQL at least as new as the source (postgresql_server_version)")


def _check_locale(report: PreflightReport, source: dict, target: dict) -> None:
    if source["encoding"] != target["encoding"]:
        report.add("encoding", FAIL, f"source {source['encoding']}, target {target['encoding']}",
                   f"create the target database with encoding {source['encoding']} "
                   "(postgresql_server_databases[].encoding)")
    else:
        report.add("encoding", OK, source["encoding"])
    differ = [f"{k} source {source[k]!r}, target {target[k]!r}" for k in ("collate", "ctype", "provider")
              if source[k] != target[k]]
    if differ:
        report.add("locale and collation", WARN,
                   "; ".join(differ) + ": text sorts differently, ORDER BY results and unique indexes on text may "
                   "differ", "create the target database with the source's locale "
                   "(postgresql_server_databases[].lc_collate and lc_ctype)")
    else:
        report.add("locale and collation", OK, f"{source['provider']} {source['collate']}")


def _check_extensions(report: PreflightReport, src: psycopg.Connection, dst: psycopg.Connection) -> None:
    used = dict(src.execute("SELECT extname, extversion FROM pg_extension WHERE extname <> 'plpgsql'").fetchall())
    if not used:
        report.add("extensions", OK, "none besides plpgsql")
        return
    available = {name: (installed, trusted) for name, installed, trusted in dst.execute(
        """SELECT a.name, a.installed_version IS NOT NULL, coalesce(bool_or(v.trusted), false)
           FROM pg_available_extensions a LEFT JOIN pg_available_extension_versions v ON v.name = a.name
           GROUP BY a.name, a.installed_version""")}
    missing = sorted(n for n in used if n not in available)
    untrusted = sorted(n for n in used if n in available and not available[n][0] and not available[n][1])
    if missing:
        report.add("extensions", FAIL, f"not available on the target: {_names(missing)}",
                   "install the packages that provide them on the target (e.g. postgresql-15-<name>)")
    elif untrusted:
        report.add("extensions", FAIL, f"not installed in the target database and only a superuser may create "
                   f"them: {_names(untrusted)}", "on the target, as postgres: CREATE EXTENSION <name> in the "
                   "target database before migrating")
    else:
        report.add("extensions", OK, _names(sorted(f"{n} {v}" for n, v in used.items())))


def _check_target_empty(report: PreflightReport, dst: psycopg.Connection, allow_nonempty: bool) -> None:
    present = catalog.user_relations(dst)
    if not present:
        report.add("target database empty", OK, f"{dst.info.dbname} holds no tables")
    elif allow_nonempty:
        report.add("target database empty", WARN, f"{len(present)} relations already there ({_names(present)}); "
                   "allowed by allow_nonempty_target", "")
    else:
        report.add("target database empty", FAIL, f"{len(present)} relations already there ({_names(present)})",
                   "migrate into an empty database: run rollback.yml (keeps the old one renamed) or drop it; "
                   "allow_nonempty_target: true only if you mean it")


def _check_disk(report: PreflightReport, source_bytes: int, free: int | None) -> None:
    if free is None:
        report.add("target disk", WARN, f"source is {_size(source_bytes)}; free space on the target unknown",
                   "pass target_free_bytes (migrate.yml reads it from the target's data directory)")
    elif free < source_bytes * 1.2:
        report.add("target disk", FAIL, f"source is {_size(source_bytes)}, target has {_size(free)} free",
                   "free space on the target's data directory (postgresql_server_data_dir): the copy needs at "
                   "least the source's size and room for WAL")
    elif free < source_bytes * 2:
        report.add("target disk", WARN, f"source is {_size(source_bytes)}, target has {_size(free)} free: "
                   "little room left afterwards", "grow the target's data volume before the data grows")
    else:
        report.add("target disk", OK, f"source is {_size(source_bytes)}, target has {_size(free)} free")


# Queries that embed this are run with parameters (an empty dict at least),
# so that %% reads as %.
USER_SCHEMAS = """n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
                  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = x.oid AND d.deptype = 'e')"""


def _check_roles(report: PreflightReport, src: psycopg.Connection, target_role: str | None) -> None:
    owners = [r[0] for r in src.execute(f"""
        SELECT DISTINCT pg_get_userbyid(owner) FROM (
            SELECT x.oid, x.relowner AS owner, x.relnamespace AS ns FROM pg_class x
            UNION ALL SELECT x.oid, x.proowner, x.pronamespace FROM pg_proc x
            UNION ALL SELECT x.oid, x.typowner, x.typnamespace FROM pg_type x
            UNION ALL SELECT x.oid, x.nspowner, x.oid FROM pg_namespace x
        ) x JOIN pg_namespace n ON n.oid = x.ns WHERE {USER_SCHEMAS}
        UNION SELECT pg_get_userbyid(lomowner) FROM pg_largeobject_metadata ORDER BY 1""", {})
              if r[0] != "pg_database_owner"]  # the public schema's owner: whoever owns the database
    grantees = [r[0] for r in src.execute(f"""
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
        FROM pg_class x JOIN pg_namespace n ON n.oid = x.relnamespace,
             LATERAL aclexplode(x.relacl) a
        WHERE {USER_SCHEMAS} AND a.grantee <> x.relowner ORDER BY 1""", {})]
    owner_to = target_role or "the role the migration connects as"
    report.add("object owners", OK, f"owned on the source by {_names(owners) or 'nobody'}; on the target by "
               f"{owner_to}")
    if grantees:
        report.add("granted privileges", WARN,
                   f"the source grants table privileges to {_names(grantees)}; privileges are not copied: on the "
                   "target, access comes from its own least-privilege users",
                   "give each of these a user with the right profile on the target (postgresql_server_users)")
    else:
        report.add("granted privileges", OK, "no table privileges granted to other roles on the source")


def _check_primary_keys(report: PreflightReport, src: psycopg.Connection) -> None:
    missing = [r[0] for r in src.execute(f"""
        SELECT format('%%I.%%I', n.nspname, x.relname) FROM pg_class x JOIN pg_namespace n ON n.oid = x.relnamespace
        WHERE x.relkind = 'r' AND {USER_SCHEMAS}
          AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = x.oid AND i.indisprimary) ORDER BY 1""", {})]
    if missing:
        report.add("primary keys", WARN, f"{len(missing)} tables without a primary key ({_names(missing)}): they "
                   "are compared row by row as text, slower, and duplicate rows cannot be told apart",
                   "add a primary key on the source where the data has one")
    else:
        report.add("primary keys", OK, "every table has one")


def _check_row_security(report: PreflightReport, src: psycopg.Connection) -> None:
    rows = src.execute(f"""
        SELECT format('%%I.%%I', n.nspname, x.relname),
               r.rolsuper OR r.rolbypassrls OR (x.relowner = r.oid AND NOT x.relforcerowsecurity)
        FROM pg_class x JOIN pg_namespace n ON n.oid = x.relnamespace,
             pg_roles r
        WHERE r.rolname = current_user AND x.relrowsecurity AND {USER_SCHEMAS} ORDER BY 1""", {}).fetchall()
    hidden = [name for name, bypass in rows if not bypass]
    if hidden:
        report.add("row-level security", FAIL,
                   f"policies would hide rows of {_names(hidden)} from {src.info.user}",
                   f"connect to the source as a superuser or a role with BYPASSRLS (ALTER ROLE {src.info.user} "
                   "BYPASSRLS)")
    elif rows:
        report.add("row-level security", OK, f"{src.info.user} reads every row of the tables with policies "
                   f"({_names([name for name, _ in rows])})")
    else:
        report.add("row-level security", OK, "no table has policies")


def _check_large_objects(report: PreflightReport, src: psycopg.Connection) -> None:
    count, unreadable = catalog.unreadable_large_objects(src)
    if unreadable:
        report.add("large objects", FAIL, f"{src.info.user} may not read {unreadable} of {count} large objects",
                   "connect to the source as a superuser or as the large objects' owner")
    else:
        report.add("large objects", OK, f"{count}, copied with their OIDs" if count else "none")


def _check_unlogged(report: PreflightReport, src: psycopg.Connection) -> None:
    found = [r[0] for r in src.execute(f"""
        SELECT format('%%I.%%I', n.nspname, x.relname) FROM pg_class x JOIN pg_namespace n ON n.oid = x.relnamespace
        WHERE x.relkind IN ('r', 'p') AND x.relpersistence = 'u' AND {USER_SCHEMAS} ORDER BY 1""", {})]
    if found:
        report.add("unlogged tables", WARN, f"{_names(found)}: created unlogged on the target too, emptied after "
                   "a crash and missing from replicas", "ALTER TABLE ... SET LOGGED on the source if they matter")
    else:
        report.add("unlogged tables", OK, "none")


def _check_oid_columns(report: PreflightReport, src: psycopg.Connection) -> None:
    rows = src.execute(f"""
        SELECT format('%%I.%%I.%%I', n.nspname, x.relname, a.attname), t.typname
        FROM pg_attribute a JOIN pg_class x ON x.oid = a.attrelid JOIN pg_namespace n ON n.oid = x.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
             OR (t.typarray = a.atttypid)
        WHERE x.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND {USER_SCHEMAS}
          AND t.typnamespace = 'pg_catalog'::regnamespace
          AND (t.typname = 'oid' OR t.typname = ANY(%(aliases)s)) ORDER BY 1""",
                       {"aliases": list(catalog.OID_ALIAS_TYPES)}).fetchall()
    aliases = [name for name, typ in rows if typ != "oid"]
    oids = [name for name, typ in rows if typ == "oid"]
    if aliases:
        report.add("reg* columns", WARN, f"{_names(aliases)} refer to catalog objects: copied by name, so each "
                   "named object must exist on the target", "keep the referenced objects in the migrated database")
    else:
        report.add("reg* columns", OK, "none")
    if oids:
        report.add("oid columns", WARN, f"{_names(oids)}: values are kept; right for large object references "
                   "(their OIDs are kept), wrong for anything else", "store a key instead of an OID")
    else:
        report.add("oid columns", OK, "none")


def _connect(report: PreflightReport, end: str, conninfo: str, setting: str) -> psycopg.Connection | None:
    try:
        return connect(conninfo, "pgharbor preflight")
    except psycopg.OperationalError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = f"check {setting}: host, port, dbname, user, password, sslrootcert"
        if "does not exist" in message and "database" in message:
            fix = "create the target database first (postgresql_server_databases)" if end == "target" else fix
        report.add(f"{end} reachable", FAIL, message, fix)
        return None


def preflight(source: str, target: str, *, target_role: str | None = None, target_free_bytes: int | None = None,
              allow_nonempty_target: bool = False, require_verified_tls: bool = True) -> PreflightReport:
    """Run every check; a check that needs an unreachable end is skipped (the
    reachability check says why)."""
    report = PreflightReport()
    src = _connect(report, "source", source, "source")
    dst = _connect(report, "target", target, "target")
    try:
        for end, conn in (("source", src), ("target", dst)):
            if conn is not None:
                report.add(f"{end} reachable", OK,
                           f"{conn.info.user}@{conn.info.host}:{conn.info.port}/{conn.info.dbname}")
                # The source is usually on this host; TLS matters where the network is.
                _check_tls(report, end, conn, end, require_verified=require_verified_tls and end == "target")
        source_facts = _database_facts(src) if src else None
        if source_facts:
            report.source_bytes = source_facts["bytes"]
        checks: list[Callable[[], None]] = []
        if src and dst:
            checks += [lambda: _check_versions(report, src, dst),
                       lambda: _check_locale(report, source_facts, _database_facts(dst)),
                       lambda: _check_extensions(report, src, dst)]
        if dst:
            checks += [lambda: _check_target_empty(report, dst, allow_nonempty_target)]
        if src:
            checks += [lambda: _check_disk(report, source_facts["bytes"], target_free_bytes),
                       lambda: _check_roles(report, src, target_role),
                       lambda: _check_primary_keys(report, src),
                       lambda: _check_row_security(report, src),
                       lambda: _check_large_objects(report, src),
                       lambda: _check_unlogged(report, src),
                       lambda: _check_oid_columns(report, src)]
        for check in checks:
            check()
        if dst and target_role:
            _check_target_role(report, dst, target_role)
    finally:
        for conn in (src, dst):
            if conn is not None:
                conn.close()
    return report


def _check_target_role(report: PreflightReport, dst: psycopg.Connection, target_role: str) -> None:
    member = dst.execute("SELECT pg_has_role(current_user, r.oid, 'USAGE') FROM pg_roles r WHERE r.rolname = %s",
                         (target_role,)).fetchone()
    if member is None:
        report.add("target owner role", FAIL, f"role {target_role} does not exist on the target",
                   "create the database with postgresql_server_databases (its owner) or set target_role")
    elif not member[0]:
        report.add("target owner role", FAIL, f"{dst.info.user} may not act as {target_role}",
                   f"give {dst.info.user} the migrator profile (postgresql_server_users)")
    else:
        report.add("target owner role", OK, f"{dst.info.user} creates the objects as {target_role}")
