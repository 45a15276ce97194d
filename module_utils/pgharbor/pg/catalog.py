"""What a database holds that the migration copies: tables with their
columns, sequences and large objects, read from the system catalogs."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

# Objects with an OID below this are built in: the same on every server of a
# major version, so their binary COPY form (which embeds element type OIDs in
# arrays) means the same thing on both ends.
FIRST_NORMAL_OID = 16384

# Built in, but their binary form is the OID of a catalog object, which is a
# different number on the target; their text form is the object's name.
OID_ALIAS_TYPES = ("regclass", "regcollation", "regconfig", "regdictionary", "regnamespace", "regoper",
                   "regoperator", "regproc", "regprocedure", "regrole", "regtype")

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[str, ...]
    # Every column's type (through arrays and domains) is built in.
    binary_safe: bool
    bytes: int
    estimated_rows: int

    @property
    def ident(self) -> sql.Composed:
        return sql.Identifier(self.schema, self.name)

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"

    def column_list(self) -> sql.Composed:
        return sql.SQL(", ").join(sql.Identifier(c) for c in self.columns)


# Plain tables only (relkind r): partitions are plain tables, partitioned
# parents (p) hold no rows, and COPY TO reads a table without its inheritance
# children, so every row is copied exactly once. Generated columns are left
# out: the target computes them. Tables of extensions belong to the extension.
TABLES_SQL = """
SELECT n.nspname, c.relname,
       coalesce(array_agg(a.attname ORDER BY a.attnum)
                FILTER (WHERE a.attname IS NOT NULL), '{}'),
       coalesce(bool_and(coalesce(base.oid, 0) < %(first)s
                         AND coalesce(elem.oid, 0) < %(first)s
                         AND NOT coalesce(bt.typname = ANY(%(aliases)s) OR elem.typname = ANY(%(aliases)s),
                                          false)), true),
       pg_table_size(c.oid),
       greatest(c.reltuples, 0)::bigint
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
     AND NOT a.attisdropped AND a.attgenerated = ''
LEFT JOIN LATERAL (
    -- a domain's base type (domains over domains: follow to the end)
    WITH RECURSIVE chain(oid, typbasetype) AS (
        SELECT t.oid, t.typbasetype FROM pg_type t WHERE t.oid = a.atttypid
        UNION ALL
        SELECT t.oid, t.typbasetype FROM pg_type t JOIN chain ON t.oid = chain.typbasetype
    )
    SELECT oid FROM chain WHERE typbasetype = 0
) base ON true
LEFT JOIN pg_type bt ON bt.oid = base.oid
LEFT JOIN pg_type elem ON elem.oid = nullif(bt.typelem, 0) AND bt.typlen = -1
WHERE c.relkind = %(relkind)s AND (c.relkind <> 'm' OR c.relispopulated)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
GROUP BY n.nspname, c.relname, c.oid, c.reltuples
ORDER BY pg_table_size(c.oid) DESC, n.nspname, c.relname
"""


def tables(conn: psycopg.Connection) -> list[Table]:
    """The tables whose rows are copied, largest first."""
    return _relations(conn, "r")


def populated_matviews(conn: psycopg.Connection) -> list[Table]:
    """Materialized views that hold rows: not copied (the target refreshes
    them from the copied tables), but compared like tables."""
    return _relations(conn, "m")


def _relations(conn: psycopg.Connection, relkind: str) -> list[Table]:
    rows = conn.execute(TABLES_SQL, {"first": FIRST_NORMAL_OID, "aliases": list(OID_ALIAS_TYPES),
                                     "relkind": relkind}).fetchall()
    return [Table(schema, name, tuple(cols), bool(safe), int(size), int(est))
            for schema, name, cols, safe, size, est in rows]


@dataclass(frozen=True)
class Sequence:
    schema: str
    name: str
    last_value: int
    is_called: bool

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}"


def sequences(conn: psycopg.Connection) -> list[Sequence]:
    """Every sequence (owned by a serial, an identity column, or standalone)
    with its current value. Sequences are not transactional: under a snapshot
    this is still the value now, which is why the cutover freezes the source."""
    found = []
    names = conn.execute(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                             AND d.objid = c.oid AND d.deptype = 'e')
           ORDER BY 1, 2"""
    ).fetchall()
    for schema, name in names:
        last_value, is_called = conn.execute(
            sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name))
        ).fetchone()
        found.append(Sequence(schema, name, int(last_value), bool(is_called)))
    return found


def large_object_count(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()[0]


def unreadable_large_objects(conn: psycopg.Connection) -> tuple[int, int]:
    """(large objects, how many of them the session's role may not read).
    Neither pg_read_all_data nor BYPASSRLS covers large objects: a reader
    needs superuser, ownership or a SELECT grant on each one."""
    return conn.execute(
        """SELECT count(*), count(*) FILTER (WHERE NOT r.rolsuper AND m.lomowner <> r.oid AND NOT EXISTS (
                   SELECT 1 FROM aclexplode(m.lomacl) a
                   WHERE a.grantee IN (r.oid, 0) AND a.privilege_type = 'SELECT'))
           FROM pg_largeobject_metadata m, pg_roles r WHERE r.rolname = current_user""").fetchone()


def user_relations(conn: psycopg.Connection) -> list[str]:
    """Tables, views and foreign tables outside the system schemas: what
    makes a database not empty."""
    return [r[0] for r in conn.execute(
        """SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
             AND n.nspname NOT IN ('pg_catalog', 'information_schema')
             AND n.nspname NOT LIKE 'pg\\_%' ORDER BY 1""")]
