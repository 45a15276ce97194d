"""What the past copy holds against the live database: rows per table, and for
one table the rows that differ, by key. Both sides are read with the fixed
session settings (pg.session), so a row's text form, and so its hash, is the
same on both when the row is."""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ..errors import PgharborError
from ..pg import catalog, rows

# Keys listed per kind of difference; the counts are always complete.
KEYS_SHOWN = 1000


class PreviewError(PgharborError, ValueError):
    pass


@dataclass(frozen=True)
class TableCounts:
    table: str
    past: int | None  # None: the table does not exist on that side
    live: int | None

    @property
    def difference(self) -> int:
        return (self.live or 0) - (self.past or 0)


@dataclass(frozen=True)
class RowDiff:
    table: str
    key: list[str]  # the primary key's columns; empty: rows are keyed by their whole text
    only_past: list[str]  # keys in the past copy and not live: deleted since
    only_live: list[str]  # inserted since
    changed: list[str]  # the same key, another row
    counts: dict[str, int]


def _count(conn: psycopg.Connection, table: catalog.Table) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM ONLY {}").format(table.ident)).fetchone()[0]


def table_counts(past: psycopg.Connection, live: psycopg.Connection) -> list[TableCounts]:
    mine = {t.label: t for t in catalog.tables(past)}
    theirs = {t.label: t for t in catalog.tables(live)}
    return [TableCounts(label,
                        _count(past, mine[label]) if label in mine else None,
                        _count(live, theirs[label]) if label in theirs else None)
            for label in sorted(mine.keys() | theirs.keys())]


def find_table(conn: psycopg.Connection, label: str) -> catalog.Table:
    for table in catalog.tables(conn):
        if table.label == label or (table.schema == "public" and table.name == label):
            return table
    raise PreviewError(f"no table {label!r} in the past copy: name it as schema.table (the preview lists them)")


def _in_order(keys: set[str]) -> list[str]:
    """Keys as a person reads them: 2 before 10 (their numbers by value, not as text)."""
    return sorted(keys, key=lambda k: [(0, int(part), "") if part.isdigit() else (1, 0, part)
                                       for part in re.split(r"(\d+)", k)])


def row_diff(past: psycopg.Connection, live: psycopg.Connection, label: str) -> RowDiff:
    table = find_table(past, label)
    key = rows.primary_key(past, table)
    # One chunk holding every row: this table's hashes by key on each side.
    everything = 1 << 62
    then = rows.row_hashes(past, table, key, everything, 0)
    now = rows.row_hashes(live, find_table(live, table.label), key, everything, 0)
    only_past = _in_order(then.keys() - now.keys())
    only_live = _in_order(now.keys() - then.keys())
    changed = _in_order({k for k in then.keys() & now.keys() if then[k] != now[k]})
    return RowDiff(table.label, key, only_past[:KEYS_SHOWN], only_live[:KEYS_SHOWN], changed[:KEYS_SHOWN],
                   {"only_past": len(only_past), "only_live": len(only_live), "changed": len(changed),
                    "same": len(then) - len(only_past) - len(changed)})
