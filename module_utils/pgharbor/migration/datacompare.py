"""Compare the rows of two databases table by table.

Each side is read in one REPEATABLE READ snapshot with the fixed session
settings (pg.session), so a row has the same text form on both. Rows are
ordered by primary key (tables without one: by the row's whole text form,
which makes duplicate rows count) and hashed in chunks; where chunks differ,
the rows of those chunks are hashed one by one to report example keys.
Chunks are numbered by row position, so one missing row makes every later
chunk differ and the examples cost a read of those chunks; chunking by key
ranges would confine it to one chunk (not done yet).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import psycopg

from ..pg import catalog
from ..pg.rows import Hashes, chunk_hashes, primary_key, row_hashes
from ..pg.session import connect, join_snapshot


@dataclass
class TableDiff:
    table: str
    source_rows: int
    target_rows: int
    chunks: int
    differing_chunks: list[int] = field(default_factory=list)
    missing_on_target: list[str] = field(default_factory=list)
    extra_on_target: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.source_rows == self.target_rows and not self.differing_chunks


@dataclass
class DataReport:
    tables: list[TableDiff]
    only_on_source: list[str]
    only_on_target: list[str]
    sequences: list[str]
    large_objects: list[str]

    @property
    def equal(self) -> bool:
        return (all(t.equal for t in self.tables) and not self.only_on_source and not self.only_on_target
                and not self.sequences and not self.large_objects)


@dataclass(frozen=True)
class Side:
    """One end of a comparison, for parallel workers: where it is, and the
    snapshot its workers join (exported by the end's main session)."""
    conninfo: str
    snapshot: str


def parallel_chunk_hashes(tables: list[catalog.Table], keys: dict[str, list[str]], sides: tuple[Side, Side],
                          chunk_rows: int, jobs: int) -> dict[tuple[int, str], Hashes]:
    """Every table's chunk hashes on both sides, jobs queries at a time, each
    worker session joined to its side's snapshot. Largest tables first."""
    local = threading.local()
    sessions: list[psycopg.Connection] = []
    lock = threading.Lock()

    def session(index: int) -> psycopg.Connection:
        conns = getattr(local, "conns", None)
        if conns is None:
            conns = local.conns = {}
        if index not in conns:
            conn = connect(sides[index].conninfo, "pgharbor compare")
            join_snapshot(conn, sides[index].snapshot)
            conns[index] = conn
            with lock:
                sessions.append(conn)
        return conns[index]

    def work(index: int, table: catalog.Table) -> tuple[tuple[int, str], Hashes]:
        return (index, table.label), chunk_hashes(session(index), table, keys[table.label], chunk_rows)

    ordered = sorted(tables, key=lambda t: t.bytes, reverse=True)
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="pgharbor-compare") as pool:
            return dict(pool.map(lambda args: work(*args), [(i, t) for t in ordered for i in (0, 1)]))
    finally:
        for conn in sessions:
            conn.close()


def _compare_table(src: psycopg.Connection, dst: psycopg.Connection, table: catalog.Table, key: list[str],
                   left: Hashes, right: Hashes, chunk_rows: int, examples: int) -> TableDiff:
    diff = TableDiff(table.label, sum(c for c, _ in left), sum(c for c, _ in right), max(len(left), len(right)))
    for index in range(diff.chunks):
        if (left[index] if index < len(left) else None) != (right[index] if index < len(right) else None):
            diff.differing_chunks.append(index)
    if diff.differing_chunks:
        # A missing or extra row shifts the rows of every later chunk, so the
        # rows are matched across all differing chunks together, not chunk by chunk.
        rows_a: dict[str, str] = {}
        rows_b: dict[str, str] = {}
        for index in diff.differing_chunks:
            rows_a.update(row_hashes(src, table, key, chunk_rows, index))
            rows_b.update(row_hashes(dst, table, key, chunk_rows, index))
        diff.missing_on_target = sorted(set(rows_a) - set(rows_b))[:examples]
        diff.extra_on_target = sorted(set(rows_b) - set(rows_a))[:examples]
        diff.changed = sorted(k for k in set(rows_a) & set(rows_b) if rows_a[k] != rows_b[k])[:examples]
    return diff


def _sequence_diffs(src: psycopg.Connection, dst: psycopg.Connection) -> list[str]:
    left = {s.label: (s.last_value, s.is_called) for s in catalog.sequences(src)}
    right = {s.label: (s.last_value, s.is_called) for s in catalog.sequences(dst)}
    return [f"{name}: source {left.get(name)}, target {right.get(name)}"
            for name in sorted(set(left) | set(right)) if left.get(name) != right.get(name)]


def _large_object_diffs(src: psycopg.Connection, dst: psycopg.Connection) -> list[str]:
    query = "SELECT oid::text, md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid"
    left, right = dict(src.execute(query).fetchall()), dict(dst.execute(query).fetchall())
    return [f"large object {oid}: " + ("missing on target" if oid not in right else
                                       "extra on target" if oid not in left else "content differs")
            for oid in sorted(set(left) | set(right), key=int) if left.get(oid) != right.get(oid)]


def compare_rows(src: psycopg.Connection, dst: psycopg.Connection, *, sides: tuple[Side, Side] | None = None,
                 chunk_rows: int = 10000, examples: int = 5, jobs: int = 1) -> DataReport:
    """Compare every table's rows, the sequences and the large objects, each
    side read in the transaction its connection has open. With sides (the
    snapshots of src and dst exported), jobs workers hash in parallel."""
    # populated materialized views too: a refresh on one side only changes what they hold
    left = {t.label: t for t in catalog.tables(src) + catalog.populated_matviews(src)}
    right = {t.label: t for t in catalog.tables(dst) + catalog.populated_matviews(dst)}
    common = [left[name] for name in sorted(set(left) & set(right))]
    keys = {t.label: primary_key(src, t) for t in common}
    if sides is not None and jobs > 1:
        hashes = parallel_chunk_hashes(common, keys, sides, chunk_rows, jobs)
    else:
        hashes = {(i, t.label): chunk_hashes(conn, t, keys[t.label], chunk_rows)
                  for t in common for i, conn in ((0, src), (1, dst))}
    tables = [_compare_table(src, dst, t, keys[t.label], hashes[0, t.label], hashes[1, t.label], chunk_rows,
                             examples) for t in common]
    return DataReport(
        tables=tables,
        only_on_source=sorted(set(left) - set(right)),
        only_on_target=sorted(set(right) - set(left)),
        sequences=_sequence_diffs(src, dst),
        large_objects=_large_object_diffs(src, dst),
    )


def compare_data(source: str, target: str, *, chunk_rows: int = 10000, examples: int = 5) -> DataReport:
    """compare_rows on two new sessions, each in one snapshot."""
    with connect(source, "pgharbor compare") as src, connect(target, "pgharbor compare") as dst:
        for conn in (src, dst):
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        return compare_rows(src, dst, chunk_rows=chunk_rows, examples=examples)
