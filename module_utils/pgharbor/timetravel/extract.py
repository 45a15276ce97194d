"""Rows back from the past: copy a table's rows, or those a condition picks,
from the past copy into the live database, in one transaction on the live
side. The common need is "the rows deleted at 10:03".

Two ways in:
- missing: rows whose primary key the live table no longer has are inserted
  into it; rows it still has are left as they are (counted as skipped);
- side: every chosen row goes into a new table of a side schema, next to the
  live one, for a person to look at and merge by hand.

Either way the past copy is only read, and stays until it is dropped."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from ..errors import PgharborError
from ..pg import rows
from .preview import find_table

MODES = ("missing", "side")


class ExtractError(PgharborError, ValueError):
    pass


@dataclass(frozen=True)
class ExtractResult:
    table: str
    mode: str
    into: str  # the live table the rows went into
    read: int  # rows chosen in the past copy
    inserted: int
    skipped: int  # missing: rows whose key the live table still has


def _relay(past: psycopg.Connection, live: psycopg.Connection, read: sql.Composable, write: sql.Composable) -> None:
    with past.cursor().copy(read) as out, live.cursor().copy(write) as into:
        for data in out:
            into.write(data)


def extract(past: psycopg.Connection, live: psycopg.Connection, label: str, *, mode: str = "missing",
            where: str | None = None, side_schema: str = "pgharbor_past") -> ExtractResult:
    """where is SQL, a condition on the past table's columns (the operator's own, given to a
    superuser-run task: it is not user input)."""
    if mode not in MODES:
        raise ExtractError(f"extract mode {mode!r} is unknown: use one of {', '.join(MODES)}")
    table = find_table(past, label)
    live_table = find_table(live, table.label)
    columns = table.column_list()
    chosen = sql.SQL("SELECT {} FROM ONLY {} t").format(columns, table.ident)
    if where:
        chosen = sql.SQL("{} WHERE {}").format(chosen, sql.SQL(where))
    read = sql.SQL("COPY ({}) TO STDOUT").format(chosen)
    with live.transaction():
        if mode == "side":
            into = sql.Identifier(side_schema, f"{table.schema}_{table.name}")
            exists = live.execute("SELECT to_regclass(%s)", (into.as_string(live),)).fetchone()[0]
            if exists:
                raise ExtractError(f"{side_schema}.{table.schema}_{table.name} exists already in the live database: "
                                   "drop it once you are done with it, or extract into another side schema")
            live.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(side_schema)))
            live.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING GENERATED)").format(
                into, live_table.ident))
            _relay(past, live, read, sql.SQL("COPY {} ({}) FROM STDIN").format(into, columns))
            count = live.execute(sql.SQL("SELECT count(*) FROM {}").format(into)).fetchone()[0]
            return ExtractResult(table.label, mode, f"{side_schema}.{table.schema}_{table.name}", count, count, 0)
        key = rows.primary_key(live, live_table)
        if not key:
            raise ExtractError(f"{table.label} has no primary key, so a missing row cannot be told from a present "
                               "one: extract it with mode side and merge by hand")
        live.execute(sql.SQL("CREATE TEMPORARY TABLE pgharbor_extract (LIKE {}) ON COMMIT DROP").format(
            live_table.ident))
        _relay(past, live, read, sql.SQL("COPY pgharbor_extract ({}) FROM STDIN").format(columns))
        count = live.execute("SELECT count(*) FROM pgharbor_extract").fetchone()[0]
        match = sql.SQL(" AND ").join(sql.SQL("x.{0} = e.{0}").format(sql.Identifier(c)) for c in key)
        inserted = live.execute(sql.SQL(
            "INSERT INTO {table} ({cols}) OVERRIDING SYSTEM VALUE SELECT {ecols} FROM pgharbor_extract e "
            "WHERE NOT EXISTS (SELECT 1 FROM ONLY {table} x WHERE {match})").format(
            table=live_table.ident, cols=columns,
            ecols=sql.SQL(", ").join(sql.SQL("e.{}").format(sql.Identifier(c)) for c in table.columns),
            match=match)).rowcount
        return ExtractResult(table.label, mode, table.label, count, inserted, count - inserted)
