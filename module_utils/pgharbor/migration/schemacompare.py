"""Compare two databases' schemas, object by object.

Each side is described as a set of objects per kind, each with a definition
in the server's own words (format_type, pg_get_indexdef, pg_get_viewdef...),
so two equal schemas give equal text and a difference reads like the DDL.
A definition also carries the state its text does not show and pg_dump
reproduces (a trigger disabled, a table's replica identity and storage
parameters, a column's storage and statistics target, a materialized view
not populated, ...), and comments and security labels are a kind of their
own, so a change that leaves the definition text alone is still seen.
Owners and grants (on relations, columns, functions, schemas, types,
languages, foreign-data wrappers and servers, large objects, and default
privileges) are compared after mapping the source's roles to the target's
(role_map: the migration gives every object to the target's owner role),
grants to the roles that only the target's privilege model has left out
(ignore_roles).

The catalogs are read as PostgreSQL 15 has them; both ends must be 15 or
later (a column a later version renames is read through to_jsonb, which
gives NULL where it is absent).
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


def _own(catalog: str, alias: str) -> str:
    """An object the database itself made (not built in, not an extension's, not part of another)."""
    return (f"{alias}.oid >= {FIRST_NORMAL_OID} AND NOT EXISTS (SELECT 1 FROM pg_depend own "
            f"WHERE own.classid = '{catalog}'::regclass AND own.objid = {alias}.oid AND own.deptype IN ('e', 'i'))")


def _named(catalog: str, alias: str) -> str:
    """The object's name as the server describes it ('operator class app.x for access method btree')."""
    return f"pg_describe_object('{catalog}'::regclass, {alias}.oid, 0)"


def _options(column: str) -> str:
    return f"'options (' || array_to_string({column}, ', ') || ')'"


def _not_internal(alias: str) -> str:
    """Not a part of another object that the server made with it (a range type's constructor functions,
    owned by the bootstrap superuser wherever the type is created, its cast to the multirange): pg_dump
    leaves such parts out."""
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend part WHERE part.objid = {alias}.oid AND part.deptype = 'i' "
            f"AND part.classid = {alias}.tableoid)")


# Types that are objects of their own: not a table's row type, not an array.
OWN_TYPES = f"""t.typtype IN ('b', 'e', 'd', 'c', 'r') AND t.typcategory <> 'A'
    AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c') AND {_own('pg_type', 't')}"""


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
                         'of type ' || nullif(c.reloftype, 0)::regtype,
                         (SELECT 'using ' || am.amname FROM pg_am am WHERE am.oid = c.relam),
                         'with (' || array_to_string(c.reloptions, ', ') || ')',
                         (SELECT concat_ws(' ', 'server ' || quote_ident(s.srvname), {_options('ft.ftoptions')})
                          FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver
                          WHERE ft.ftrelid = c.oid))
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
                         {_options('a.attfdwoptions')},
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
    # The kinds below are rarer; each is named as pg_describe_object names it,
    # its definition spelled from the catalog row with every reference by name.
    "aggregates": f"""
        SELECT {_named('pg_proc', 'p')},
               concat_ws(' ', 'kind ' || g.aggkind::text, 'direct ' || g.aggnumdirectargs,
                         'parallel ' || p.proparallel::text,
                         'sfunc ' || g.aggtransfn::regprocedure, 'stype ' || format_type(g.aggtranstype, NULL),
                         'sspace ' || g.aggtransspace, 'finalfunc ' || nullif(g.aggfinalfn, 0)::regprocedure,
                         CASE WHEN g.aggfinalextra THEN 'finalfunc_extra' END, 'finalmodify ' || g.aggfinalmodify::text,
                         'combinefunc ' || nullif(g.aggcombinefn, 0)::regprocedure,
                         'serialfunc ' || nullif(g.aggserialfn, 0)::regprocedure,
                         'deserialfunc ' || nullif(g.aggdeserialfn, 0)::regprocedure,
                         'msfunc ' || nullif(g.aggmtransfn, 0)::regprocedure,
                         'minvfunc ' || nullif(g.aggminvtransfn, 0)::regprocedure,
                         'mstype ' || format_type(nullif(g.aggmtranstype, 0), NULL), 'msspace ' || g.aggmtransspace,
                         'mfinalfunc ' || nullif(g.aggmfinalfn, 0)::regprocedure,
                         CASE WHEN g.aggmfinalextra THEN 'mfinalfunc_extra' END,
                         'mfinalmodify ' || g.aggmfinalmodify::text,
                         'sortop ' || nullif(g.aggsortop, 0)::regoperator, 'initcond ' || quote_literal(g.agginitval),
                         'minitcond ' || quote_literal(g.aggminitval))
        FROM pg_aggregate g JOIN pg_proc p ON p.oid = g.aggfnoid WHERE {_own('pg_proc', 'p')}""",
    "statistics": f"""
        SELECT {_named('pg_statistic_ext', 's')},
               pg_get_statisticsobjdef(s.oid) || ' statistics ' || coalesce(s.stxstattarget, -1)
        FROM pg_statistic_ext s WHERE {_own('pg_statistic_ext', 's')}""",
    "collations": f"""
        SELECT {_named('pg_collation', 'c')},
               concat_ws(' ', 'provider ' || c.collprovider::text,
                         CASE WHEN NOT c.collisdeterministic THEN 'nondeterministic' END,
                         'encoding ' || pg_encoding_to_char(c.collencoding), 'collate ' || c.collcollate,
                         'ctype ' || c.collctype,
                         'locale ' || coalesce(to_jsonb(c) ->> 'colliculocale', to_jsonb(c) ->> 'colllocale'),
                         'rules ' || (to_jsonb(c) ->> 'collicurules'))
        FROM pg_collation c WHERE {_own('pg_collation', 'c')}""",
    "casts": f"""
        SELECT {_named('pg_cast', 'c')},
               concat_ws(' ', CASE c.castmethod WHEN 'f' THEN 'with function ' || c.castfunc::regprocedure
                                  WHEN 'i' THEN 'with inout' ELSE 'without function' END,
                         CASE c.castcontext WHEN 'e' THEN 'explicit' WHEN 'a' THEN 'as assignment'
                              ELSE 'as implicit' END)
        FROM pg_cast c WHERE {_own('pg_cast', 'c')}""",
    "operators": f"""
        SELECT {_named('pg_operator', 'o')},
               concat_ws(' ', 'kind ' || o.oprkind::text, 'function ' || o.oprcode::regprocedure,
                         'returns ' || format_type(o.oprresult, NULL),
                         'commutator ' || nullif(o.oprcom, 0)::regoperator,
                         'negator ' || nullif(o.oprnegate, 0)::regoperator,
                         'restrict ' || nullif(o.oprrest, 0)::regprocedure,
                         'join ' || nullif(o.oprjoin, 0)::regprocedure,
                         CASE WHEN o.oprcanhash THEN 'hashes' END, CASE WHEN o.oprcanmerge THEN 'merges' END)
        FROM pg_operator o WHERE {_own('pg_operator', 'o')}""",
    "operator classes": f"""
        SELECT {_named('pg_opclass', 'c')},
               concat_ws(' ', CASE WHEN c.opcdefault THEN 'default' END, 'for type ' || format_type(c.opcintype, NULL),
                         'family ' || {_named('pg_opfamily', 'f')},
                         'storage ' || format_type(nullif(c.opckeytype, 0), NULL))
        FROM pg_opclass c JOIN pg_opfamily f ON f.oid = c.opcfamily WHERE {_own('pg_opclass', 'c')}""",
    # An operator family's members: its operators (pg_amop) and support functions (pg_amproc).
    "operator families": f"""
        SELECT {_named('pg_opfamily', 'f')},
               concat_ws(' ', (SELECT string_agg(format('operator %s %s %s%s', o.amopstrategy, o.amopopr::regoperator,
                                                        o.amoppurpose, ' order by ' || {_named('pg_opfamily', 'sf')}),
                                                 ', ' ORDER BY o.amopstrategy, o.amopopr::regoperator::text)
                               FROM pg_amop o LEFT JOIN pg_opfamily sf ON sf.oid = o.amopsortfamily
                               WHERE o.amopfamily = f.oid),
                         (SELECT string_agg(format('function %s (%s, %s) %s', p.amprocnum,
                                                   format_type(p.amproclefttype, NULL),
                                                   format_type(p.amprocrighttype, NULL), p.amproc::regprocedure),
                                            ', ' ORDER BY p.amprocnum, p.amproc::regprocedure::text)
                          FROM pg_amproc p WHERE p.amprocfamily = f.oid))
        FROM pg_opfamily f WHERE {_own('pg_opfamily', 'f')}""",
    "conversions": f"""
        SELECT {_named('pg_conversion', 'c')},
               concat_ws(' ', CASE WHEN c.condefault THEN 'default' END, pg_encoding_to_char(c.conforencoding),
                         'to ' || pg_encoding_to_char(c.contoencoding), 'from ' || c.conproc::regprocedure)
        FROM pg_conversion c WHERE {_own('pg_conversion', 'c')}""",
    "languages": f"""
        SELECT {_named('pg_language', 'l')},
               concat_ws(' ', CASE WHEN l.lanpltrusted THEN 'trusted' END, CASE WHEN l.lanispl THEN 'procedural' END,
                         'handler ' || nullif(l.lanplcallfoid, 0)::regprocedure,
                         'inline ' || nullif(l.laninline, 0)::regprocedure,
                         'validator ' || nullif(l.lanvalidator, 0)::regprocedure)
        FROM pg_language l WHERE {_own('pg_language', 'l')}""",
    "text search configurations": f"""
        SELECT {_named('pg_ts_config', 'c')},
               concat_ws(' ', 'parser ' || (SELECT {_named('pg_ts_parser', 'p')} FROM pg_ts_parser p
                                            WHERE p.oid = c.cfgparser),
                         (SELECT string_agg(format('%s:%s %s', m.maptokentype, m.mapseqno, m.mapdict::regdictionary),
                                            ', ' ORDER BY m.maptokentype, m.mapseqno)
                          FROM pg_ts_config_map m WHERE m.mapcfg = c.oid))
        FROM pg_ts_config c WHERE {_own('pg_ts_config', 'c')}""",
    "text search dictionaries": f"""
        SELECT {_named('pg_ts_dict', 'd')},
               concat_ws(' ', 'template ' || (SELECT {_named('pg_ts_template', 't')} FROM pg_ts_template t
                                              WHERE t.oid = d.dicttemplate), d.dictinitoption)
        FROM pg_ts_dict d WHERE {_own('pg_ts_dict', 'd')}""",
    "text search parsers": f"""
        SELECT {_named('pg_ts_parser', 'p')},
               concat_ws(' ', p.prsstart::regprocedure, p.prstoken::regprocedure, p.prsend::regprocedure,
                         nullif(p.prsheadline, 0)::regprocedure, p.prslextype::regprocedure)
        FROM pg_ts_parser p WHERE {_own('pg_ts_parser', 'p')}""",
    "text search templates": f"""
        SELECT {_named('pg_ts_template', 't')},
               concat_ws(' ', nullif(t.tmplinit, 0)::regprocedure, t.tmpllexize::regprocedure)
        FROM pg_ts_template t WHERE {_own('pg_ts_template', 't')}""",
    "foreign-data wrappers": f"""
        SELECT {_named('pg_foreign_data_wrapper', 'w')},
               concat_ws(' ', 'handler ' || nullif(w.fdwhandler, 0)::regprocedure,
                         'validator ' || nullif(w.fdwvalidator, 0)::regprocedure, {_options('w.fdwoptions')})
        FROM pg_foreign_data_wrapper w WHERE {_own('pg_foreign_data_wrapper', 'w')}""",
    "foreign servers": f"""
        SELECT {_named('pg_foreign_server', 's')},
               concat_ws(' ', 'wrapper ' || quote_ident(w.fdwname), 'type ' || quote_literal(s.srvtype),
                         'version ' || quote_literal(s.srvversion), {_options('s.srvoptions')})
        FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
        WHERE {_own('pg_foreign_server', 's')}""",
    "event triggers": f"""
        SELECT {_named('pg_event_trigger', 'e')},
               concat_ws(' ', 'on ' || e.evtevent, 'execute ' || e.evtfoid::regprocedure,
                         'tags ' || array_to_string(e.evttags, ', '), {_enabled('e.evtenabled')})
        FROM pg_event_trigger e WHERE {_own('pg_event_trigger', 'e')}""",
    # What a publication publishes: every table, tables of schemas, tables (with their row filter and columns).
    "publications": f"""
        SELECT {_named('pg_publication', 'p')},
               concat_ws(' ', CASE WHEN p.puballtables THEN 'all tables' END,
                         'publish ' || concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END,
                                                 CASE WHEN p.pubupdate THEN 'update' END,
                                                 CASE WHEN p.pubdelete THEN 'delete' END,
                                                 CASE WHEN p.pubtruncate THEN 'truncate' END),
                         CASE WHEN p.pubviaroot THEN 'via root' END,
                         (SELECT 'schemas ' || string_agg(quote_ident(pn.pnnspid::regnamespace::text), ', '
                                                          ORDER BY pn.pnnspid::regnamespace::text)
                          FROM pg_publication_namespace pn WHERE pn.pnpubid = p.oid),
                         (SELECT 'tables ' || string_agg(
                                     concat_ws(' ', r.prrelid::regclass::text,
                                               '(' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                                                       FROM pg_attribute a
                                                       WHERE a.attrelid = r.prrelid
                                                         AND a.attnum = ANY(r.prattrs)) || ')',
                                               'where ' || pg_get_expr(r.prqual, r.prrelid)),
                                     ', ' ORDER BY r.prrelid::regclass::text)
                          FROM pg_publication_rel r WHERE r.prpubid = p.oid))
        FROM pg_publication p WHERE {_own('pg_publication', 'p')}""",
    "transforms": f"""
        SELECT {_named('pg_transform', 't')},
               concat_ws(' ', 'from sql ' || nullif(t.trffromsql, 0)::regprocedure,
                         'to sql ' || nullif(t.trftosql, 0)::regprocedure)
        FROM pg_transform t WHERE {_own('pg_transform', 't')}""",
    "access methods": f"""
        SELECT {_named('pg_am', 'a')}, a.amtype::text || ' ' || a.amhandler::regprocedure
        FROM pg_am a WHERE {_own('pg_am', 'a')}""",
}

# User mappings' options often hold passwords: compared by name only, so a
# report never shows one (and pg_user_mappings is the view a non-superuser
# may read).
QUERIES["user mappings"] = f"""
    SELECT format('for %s server %s', u.usename, quote_ident(u.srvname)),
           (SELECT 'options ' || string_agg(split_part(o, '=', 1), ', ' ORDER BY o) FROM unnest(u.umoptions) o)
    FROM pg_user_mappings u JOIN pg_foreign_server s ON s.oid = u.srvid WHERE {_own('pg_foreign_server', 's')}"""

# Every object that has an owner and grants: (catalog, oid, sub-object,
# owner, its ACL as the server applies it: acldefault where none is stored).
_OWNED_OBJECTS = f"""
    SELECT 'pg_class'::regclass AS classid, c.oid AS objid, 0 AS objsubid, c.relowner AS owner,
           coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)) AS acl
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND {_user()}
    UNION ALL
    SELECT 'pg_proc'::regclass, p.oid, 0, p.proowner, coalesce(p.proacl, acldefault('f', p.proowner))
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_user(obj="p.oid")} AND {_not_internal("p")}
    UNION ALL
    SELECT 'pg_namespace'::regclass, n.oid, 0, n.nspowner, coalesce(n.nspacl, acldefault('n', n.nspowner))
    FROM pg_namespace n WHERE {_user(obj="n.oid")}
    UNION ALL
    SELECT 'pg_type'::regclass, t.oid, 0, t.typowner, coalesce(t.typacl, acldefault('T', t.typowner))
    FROM pg_type t WHERE {OWN_TYPES}
    UNION ALL
    SELECT 'pg_language'::regclass, l.oid, 0, l.lanowner, coalesce(l.lanacl, acldefault('l', l.lanowner))
    FROM pg_language l WHERE {_own('pg_language', 'l')}
    UNION ALL
    SELECT 'pg_foreign_data_wrapper'::regclass, w.oid, 0, w.fdwowner, coalesce(w.fdwacl, acldefault('F', w.fdwowner))
    FROM pg_foreign_data_wrapper w WHERE {_own('pg_foreign_data_wrapper', 'w')}
    UNION ALL
    SELECT 'pg_foreign_server'::regclass, s.oid, 0, s.srvowner, coalesce(s.srvacl, acldefault('S', s.srvowner))
    FROM pg_foreign_server s WHERE {_own('pg_foreign_server', 's')}
    UNION ALL
    SELECT 'pg_largeobject'::regclass, m.oid, 0, m.lomowner, coalesce(m.lomacl, acldefault('L', m.lomowner))
    FROM pg_largeobject_metadata m
    UNION ALL
    {" UNION ALL ".join(
        f"SELECT '{catalog}'::regclass, x.oid, 0, x.{owner}, NULL::aclitem[] FROM {catalog} x "
        f"WHERE {_own(catalog, 'x')}"
        for catalog, owner in (("pg_collation", "collowner"), ("pg_conversion", "conowner"),
                               ("pg_operator", "oprowner"), ("pg_opclass", "opcowner"), ("pg_opfamily", "opfowner"),
                               ("pg_ts_config", "cfgowner"), ("pg_ts_dict", "dictowner"),
                               ("pg_statistic_ext", "stxowner"), ("pg_event_trigger", "evtowner"),
                               ("pg_publication", "pubowner")))}"""

OWNERS_QUERY = f"""
    SELECT pg_describe_object(o.classid, o.objid, 0), pg_get_userbyid(o.owner) FROM ({_OWNED_OBJECTS}) o"""

# Grants, one row per privilege; a column's grants are on top of its table's.
GRANTS_QUERY = f"""
    SELECT pg_describe_object(o.classid, o.objid, o.objsubid),
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END,
           pg_get_userbyid(o.owner), a.privilege_type, a.is_grantable
    FROM (SELECT classid, objid, objsubid, owner, acl FROM ({_OWNED_OBJECTS}) w
          UNION ALL
          SELECT 'pg_class'::regclass, c.oid, a.attnum, c.relowner, a.attacl
          FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND {_user()}) o,
         LATERAL aclexplode(o.acl) a"""

# ALTER DEFAULT PRIVILEGES: (kind of object, whose objects, in which schema or
# '', grantee, privilege, grantable).
DEFAULT_PRIVILEGES_QUERY = """
    SELECT CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
                WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE d.defaclobjtype::text END,
           pg_get_userbyid(d.defaclrole), coalesce(quote_ident(n.nspname), ''),
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type, a.is_grantable
    FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace, LATERAL aclexplode(d.defaclacl) a"""


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
    described["owners"] = {obj: role_map.get(owner, owner) for obj, owner in conn.execute(OWNERS_QUERY)}
    rows = list(conn.execute(GRANTS_QUERY))
    for kind, role, schema, grantee, privilege, grantable in conn.execute(DEFAULT_PRIVILEGES_QUERY):
        where = f" in schema {schema}" if schema else ""
        rows.append((f"default privileges on {kind} of {role_map.get(role, role)}{where}", grantee, role, privilege,
                     grantable))
    by_object: dict[tuple[str, str], list[str]] = {}
    for obj, grantee, owner, privilege, grantable in rows:
        grantee = "OWNER" if grantee == owner else role_map.get(grantee, grantee)
        if grantee in ignore_roles:
            continue
        by_object.setdefault((obj, grantee), []).append(privilege + ("*" if grantable else ""))
    described["grants"] = {f"{obj} to {grantee}": ", ".join(sorted(privileges))
                           for (obj, grantee), privileges in by_object.items()}
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
