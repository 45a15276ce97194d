"""Rows in a canonical order and hashed in chunks: what the comparison of two
databases (migration.datacompare) and a backup's per-table content hash
(backup.take) both read. Rows are ordered by primary key (tables without
one: by the row's whole text form, which makes duplicate rows count) and
hashed as their text form under the fixed session settings (pg.session), so
that a row hashes the same on both ends."""

from __future__ import annotations

import psycopg
from psycopg import sql

from . import catalog

# (rows, md5 of their text forms) per chunk, in order
Hashes = list[tuple[int, str]]

# The whole row's text form. Not "t::text": where the table has a column
# named t, that is the column (a column wins over the row alias), and only
# that column would be hashed. "t.*" can only mean the row.
ROW_TEXT = "ROW(t.*)::text"


def primary_key(conn: psycopg.Connection, table: catalog.Table) -> list[str]:
    rows = conn.execute(
        """SELECT a.attname FROM pg_index i
           JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) ON true
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.pos""",
        (table.ident.as_string(conn),)).fetchall()
    return [r[0] for r in rows]


def _order(key: list[str]) -> sql.Composable:
    if key:
        return sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in key)
    return sql.SQL(ROW_TEXT)


def _key_text(key: list[str]) -> sql.Composable:
    if key:
        return sql.SQL("concat_ws(',', {})").format(
            sql.SQL(", ").join(sql.SQL("t.{}::text").format(sql.Identifier(c)) for c in key))
    # Without a key the row is its own identity; duplicates get a number.
    return sql.SQL(f"{ROW_TEXT} || ' #' || row_number() OVER (PARTITION BY {ROW_TEXT})")


def chunk_hashes(conn: psycopg.Connection, table: catalog.Table, key: list[str], chunk_rows: int) -> Hashes:
    query = sql.SQL(
        """SELECT count(*), md5(string_agg(r, E'\\n' ORDER BY n)) FROM (
               SELECT {row} AS r, row_number() OVER (ORDER BY {order}) - 1 AS n FROM ONLY {table} t
           ) numbered GROUP BY n / {size} ORDER BY n / {size}""").format(
        row=sql.SQL(ROW_TEXT), order=_order(key), table=table.ident, size=sql.Literal(chunk_rows))
    return [(int(c), h) for c, h in conn.execute(query)]


def row_hashes(conn: psycopg.Connection, table: catalog.Table, key: list[str], chunk_rows: int,
               chunk: int) -> dict[str, str]:
    query = sql.SQL(
        """SELECT k, h FROM (
               SELECT {keytext} AS k, md5({row}) AS h, row_number() OVER (ORDER BY {order}) - 1 AS n
               FROM ONLY {table} t) numbered
           WHERE n / {size} = {chunk}""").format(
        keytext=_key_text(key), row=sql.SQL(ROW_TEXT), order=_order(key), table=table.ident,
        size=sql.Literal(chunk_rows),
        chunk=sql.Literal(chunk))
    return dict(conn.execute(query).fetchall())

