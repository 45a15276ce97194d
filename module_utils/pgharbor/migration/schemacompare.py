"""Compare two databases' schemas, object by object.

Each side is described as a set of objects per kind, each with a definition
in the server's own words (format_type, pg_get_indexdef, pg_get_viewdef...),
so two equal schemas give equal text and a difference reads like the DDL.
A definition also carries the state its text does not show and pg_dump
reproduces (a trigger disabled, a table's replica identity and storage
parameters, a column's storage and statistics target, a materialized view
not populated, ...), and comments and security labels are a kind of their
own, so a change that leaves the definition text alone is still seen.
Owners are not compared (the migration maps them to the target's owner
role); grants on tables, views and sequences are, after mapping the source's
roles to the target's (role_map) and leaving out the roles that only the
target's privilege model has (ignore_roles).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from ..pg.catalog import FIRST_NORMAL_OID

SCHEMA_FILTER = """{ns}.nspname NOT IN ('pg_catalog', 'information_schema') AND {ns}.nspname NOT LIKE 'pg\\_%'
    AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = {obj} AND d.deptype = 'e')"""


def _user(ns: str = "n", obj: str = "c.oid") -> str:
    return SCHEMA_FILTER.format(ns=ns, obj=obj)


def _enabled(column: str) -> str:
    """When a trigger or rule fires (session_replication_role): as its definition leaves it, or not."""
    return (f"CASE {column} WHEN 'D' THEN ' disabled' WHEN 'R' THEN ' enabled replica' "
            "WHEN 'A' THEN ' enabled always' ELSE '' END")


def _member(alias: str) -> str:
    """Not a member of an extension (the extension brings it, comments included)."""
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = {alias}.classoid AND e.objid = {alias}.objoid "
            "AND e.deptype = 'e')")


# kind -> query returning (object name, definition)
QUERIES: dict[str, str] = {
    "tables": f"""
        SELECT format('%I.%I', n.nspname, c.relname),
               concat_ws(' ', CASE c.relkind WHEN 'p' THEN 'partitioned by ' || pg_get_partkeydef(c.oid) ELSE '' END,
                         CASE c.relpersistence WHEN 'u' THEN 'unlogged' ELSE '' END,
                         CASE WHEN c.relrowsecurity THEN 'row security' END,
                         CASE WHEN c.relforcerowsecurity THEN 'forced' END,
                         CASE WHEN c.relispartition THEN 'partition ' || pg_get_expr(c.relpartbound, c.oid) END,
                         (SELECT 'inherits ' || string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
                          FROM pg_inherits i WHERE i.inhrelid = c.oid AND NOT c.relispartition),
                         CASE c.relreplident WHEN 'n' THEN 'replica identity nothing'
                              WHEN 'f' THEN 'replica identity full' WHEN 'i' THEN 'replica identity index' END,
                         'with (' || array_to_string(c.reloptions, ', ') || ')')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f') AND {_user()}""",
    "columns": f"""
        SELECT format('%I.%I.%I', n.nspname, c.relname, a.attname),
               concat_ws(' ', format_type(a.atttypid, a.atttypmod),
                         CASE WHEN a.attnotnull THEN 'NOT NULL' END,
                         CASE WHEN a.attidentity <> '' THEN 'IDENTITY ' || a.attidentity::text END,
                         CASE WHEN a.attgenerated <> '' THEN 'GENERATED ' || pg_get_expr(ad.adbin, ad.adrelid)
                              WHEN ad.adbin IS NOT NULL THEN 'DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid) END,
                         CASE WHEN a.attcollation <> t.typcollation THEN 'COLLATE ' || a.attcollation::regcollation END,
                         CASE WHEN a.attstorage <> t.typstorage THEN 'STORAGE ' || a.attstorage::text END,
                         CASE WHEN a.attcompression <> '' THEN 'COMPRESSION ' || a.attcompression::text END,
                         CASE WHEN coalesce(a.attstattarget, -1) >= 0 THEN 'STATISTICS ' || a.attstattarget END,
                         'WITH (' || array_to_string(a.attoptions, ', ') || ')',
                         '#' || rank() OVER (PARTITION BY c.oid ORDER BY a.attnum))
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'c') AND a.attnum > 0 AND NOT a.attisdropped AND {_user()}""",
    "constraints": f"""
        SELECT format('%I.%I %I', n.nspname, c.relname, k.conname), pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_user()}""",
    "indexes": f"""
        SELECT format('%I.%I', n.nspname, c.relname),
               concat_ws(' ', pg_get_indexdef(c.oid), CASE WHEN i.indisclustered THEN 'clustered' END,
                         CASE WHEN i.indisreplident THEN 'replica identity' END,
                         CASE WHEN NOT i.indisvalid THEN 'invalid' END)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_index i ON i.indexrelid = c.oid
        WHERE c.relkind IN ('i', 'I') AND {_user()}""",
    "sequences": f"""
        SELECT format('%I.%I', s.schemaname, s.sequencename),
               format('%s start %s increment %s min %s max %s cache %s%s%s', s.data_type, s.start_value,
                      s.increment_by, s.min_value, s.max_value, s.cache_size, CASE WHEN s.cycle THEN ' cycle' END,
                      (SELECT format(' owned by %I.%I.%I%s', rn.nspname, rc.relname, ra.attname,
                                     CASE d.deptype WHEN 'i' THEN ' (identity)' ELSE '' END)
                       FROM pg_depend d JOIN pg_class rc ON rc.oid = d.refobjid
                       JOIN pg_namespace rn ON rn.oid = rc.relnamespace
                       JOIN pg_attribute ra ON ra.attrelid = d.refobjid AND ra.attnum = d.refobjsubid
                       WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                         AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
        FROM pg_sequences s JOIN pg_namespace n ON n.nspname = s.schemaname
        JOIN pg_class c ON c.relname = s.sequencename AND c.relnamespace = n.oid
        WHERE {_user()}""",
    "views": f"""
        SELECT format('%I.%I', n.nspname, c.relname),
               concat_ws(' ', CASE c.relkind WHEN 'm' THEN 'materialized' END,
                         CASE WHEN c.relkind = 'm' AND NOT c.relispopulated THEN '(not populated)' END,
                         'with (' || array_to_string(c.reloptions, ', ') || ')', pg_get_viewdef(c.oid))
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND {_user()}""",
    "functions": f"""
        SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
               CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid)
                    ELSE p.prokind::text || ' ' || pg_get_function_result(p.oid) END
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_user(obj="p.oid")}""",
    "triggers": f"""
        SELECT format('%I.%I %I', n.nspname, c.relname, g.tgname), pg_get_triggerdef(g.oid) || {_enabled('g.tgenabled')}
        FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT g.tgisinternal AND {_user()}""",
    "types": f"""
        SELECT format('%I.%I', n.nspname, t.typname),
               CASE t.typtype
                 WHEN 'e' THEN 'enum ' || (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
                                           FROM pg_enum e WHERE e.enumtypid = t.oid)
                 WHEN 'd' THEN concat_ws(' ', 'domain ' || format_type(t.typbasetype, t.typtypmod),
                      CASE WHEN t.typcollation <> bt.typcollation THEN 'collate ' || t.typcollation::regcollation END,
                      'default ' || t.typdefault, CASE WHEN t.typnotnull THEN 'not null' END,
                      (SELECT string_agg(pg_get_constraintdef(k.oid), ' ' ORDER BY k.conname)
                       FROM pg_constraint k WHERE k.contypid = t.oid))
                 WHEN 'c' THEN 'composite'
                 WHEN 'r' THEN (
                      SELECT concat_ws(' ', 'range ' || format_type(r.rngsubtype, NULL),
                                       'multirange ' || format_type(r.rngmultitypid, NULL),
                                       'opclass ' || (SELECT opcname FROM pg_opclass WHERE oid = r.rngsubopc),
                                       CASE WHEN r.rngcollation <> 0 THEN 'collate ' || r.rngcollation::regcollation
                                       END,
                                       CASE WHEN r.rngcanonical <> 0 THEN 'canonical ' || r.rngcanonical::regproc END,
                                       CASE WHEN r.rngsubdiff <> 0 THEN 'subdiff ' || r.rngsubdiff::regproc END)
                      FROM pg_range r WHERE r.rngtypid = t.oid)
                 ELSE t.typtype::text END
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_type bt ON bt.oid = t.typbasetype
        WHERE t.typtype IN ('e', 'd', 'c', 'r')
          AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
          AND {_user(obj="t.oid")}""",
    "policies": f"""
        SELECT format('%I.%I %I', p.schemaname, p.tablename, p.policyname),
               format('%s %s to %s using %s check %s', p.permissive, p.cmd, p.roles, p.qual, p.with_check)
        FROM pg_policies p JOIN pg_namespace n ON n.nspname = p.schemaname
        JOIN pg_class c ON c.relname = p.tablename AND c.relnamespace = n.oid WHERE {_user()}""",
    "extensions": """
        SELECT extname, extversion || ' in ' || quote_ident(extnamespace::regnamespace::text) FROM pg_extension""",
    "rules": f"""
        SELECT format('%I.%I %I', n.nspname, c.relname, r.rulename), pg_get_ruledef(r.oid) || {_enabled('r.ev_enabled')}
        FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE r.rulename <> '_RETURN' AND {_user()}""",
    # Comments and security labels on every object of the database's own
    # (oids from FirstNormalObjectId on), named by pg_describe_object.
    "comments": f"""
        SELECT pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description
        FROM pg_description d WHERE d.objoid >= {FIRST_NORMAL_OID} AND {_member("d")}""",
    "security labels": f"""
        SELECT pg_describe_object(s.classoid, s.objoid, s.objsubid), s.provider || ': ' || s.label
        FROM pg_seclabel s WHERE s.objoid >= {FIRST_NORMAL_OID} AND {_member("s")}""",
    "schemas": f"""
        SELECT quote_ident(n.nspname), '' FROM pg_namespace n WHERE {_user(obj="n.oid")}""",
}

GRANTS_QUERY = f"""
    SELECT format('%I.%I', n.nspname, c.relname),
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
           pg_get_userbyid(c.relowner), a.privilege_type, a.is_grantable
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
         LATERAL aclexplode(coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char",
                                                        c.relowner))) a
    WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND {_user()}"""


@dataclass
class KindDiff:
    kind: str
    missing_on_target: list[str] = field(default_factory=list)
    extra_on_target: list[str] = field(default_factory=list)
    # (name, source definition, target definition)
    changed: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not (self.missing_on_target or self.extra_on_target or self.changed)


@dataclass
class SchemaReport:
    kinds: list[KindDiff]
    counts: dict[str, int]

    @property
    def equal(self) -> bool:
        return all(k.equal for k in self.kinds)

    def diff_text(self) -> str:
        """A readable diff: '-' only on the source, '+' only on the target."""
        lines: list[str] = []
        for kind in self.kinds:
            if kind.equal:
                continue
            lines.append(f"{kind.kind}:")
            lines += [f"  - {name}" for name in kind.missing_on_target]
            lines += [f"  + {name}" for name in kind.extra_on_target]
            for name, left, right in kind.changed:
                lines += [f"  ~ {name}", f"      source: {left}", f"      target: {right}"]
        return "\n".join(lines)


def describe(conn: psycopg.Connection, role_map: dict[str, str], ignore_roles: set[str]) -> dict[str, dict[str, str]]:
    """Every kind of object of one database: {kind: {name: definition}}."""
    described = {kind: {name: " ".join(str(definition or "").split()) for name, definition in conn.execute(query)}
                 for kind, query in QUERIES.items()}
    grants: dict[str, str] = {}
    rows = conn.execute(GRANTS_QUERY).fetchall()
    by_object: dict[tuple[str, str], list[str]] = {}
    for obj, grantee, owner, privilege, grantable in rows:
        grantee = "OWNER" if grantee == owner else role_map.get(grantee, grantee)
        if grantee in ignore_roles:
            continue
        by_object.setdefault((obj, grantee), []).append(privilege + ("*" if grantable else ""))
    for (obj, grantee), privileges in by_object.items():
        grants[f"{obj} to {grantee}"] = ", ".join(sorted(privileges))
    described["grants"] = grants
    return described


def compare_described(source: dict[str, dict[str, str]], target: dict[str, dict[str, str]]) -> SchemaReport:
    kinds = []
    for kind in source:
        left, right = source[kind], target.get(kind, {})
        kinds.append(KindDiff(
            kind,
            missing_on_target=sorted(set(left) - set(right)),
            extra_on_target=sorted(set(right) - set(left)),
            changed=[(name, left[name], right[name]) for name in sorted(set(left) & set(right))
                     if left[name] != right[name]],
        ))
    return SchemaReport(kinds, {kind: len(objects) for kind, objects in source.items()})


def compare_schema(src: psycopg.Connection, dst: psycopg.Connection, *, role_map: dict[str, str] | None = None,
                   ignore_roles: list[str] | None = None) -> SchemaReport:
    ignored = set(ignore_roles or [])
    return compare_described(describe(src, role_map or {}, ignored), describe(dst, {}, ignored))
