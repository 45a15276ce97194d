"""Copy table rows from one server to another under one exported snapshot.

Each table travels as COPY ... TO STDOUT on the source streamed straight into
COPY ... FROM STDIN on the target: the bytes pass through without being
parsed. Binary format when every column type is built in (see
catalog.Table.binary_safe), text otherwise; a table whose binary copy fails
is copied again as text. Several workers copy tables in parallel, largest
first; each worker's source session joins the same snapshot.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import psycopg
from psycopg import sql

from ..errors import PgharborError
from ..pg.catalog import Table
from ..pg.session import connect, join_snapshot


@dataclass
class TableResult:
    table: str
    rows: int
    bytes: int
    seconds: float
    format: str


class ConnectionLost(PgharborError, RuntimeError):
    """A server went away during a copy; the message says which one."""


# Progress callback: (table label, bytes so far, done?)
Progress = Callable[[str, int, bool], None]


def default_jobs() -> int:
    """Workers the machine can use: one per CPU, at least 2 (one worker
    waits on the network while another waits on the disk)."""
    return max(2, len(os.sched_getaffinity(0)))


class _Worker(threading.local):
    source: psycopg.Connection | None = None
    target: psycopg.Connection | None = None


class TableCopier:
    """Copies tables; one source and one target session per worker thread."""

    def __init__(self, source: str, target: str, snapshot: str, *, target_role: str | None = None,
                 progress: Progress | None = None, chunk_callback_bytes: int = 8 << 20):
        self.source = source
        self.target = target
        self.snapshot = snapshot
        self.target_role = target_role
        self.progress = progress
        self.chunk_callback_bytes = chunk_callback_bytes
        self._local = _Worker()
        self._sessions: list[psycopg.Connection] = []
        self._lock = threading.Lock()

    def _source(self) -> psycopg.Connection:
        if self._local.source is None or self._local.source.closed:
            conn = connect(self.source, "pgharbor copy")
            join_snapshot(conn, self.snapshot)
            self._local.source = conn
            with self._lock:
                self._sessions.append(conn)
        return self._local.source

    def _target(self) -> psycopg.Connection:
        if self._local.target is None or self._local.target.closed:
            conn = connect(self.target, "pgharbor copy")
            if self.target_role:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.target_role)))
            self._local.target = conn
            with self._lock:
                self._sessions.append(conn)
        return self._local.target

    def _drop_sessions(self) -> None:
        """After a failed COPY a session's state is unknown: start afresh."""
        for conn in (self._local.source, self._local.target):
            if conn is not None:
                conn.close()
        self._local.source = self._local.target = None

    def copy(self, table: Table, fmt: str) -> TableResult:
        started = time.monotonic()
        options = sql.SQL("(FORMAT binary)") if fmt == "binary" else sql.SQL("(FORMAT text)")
        columns = table.column_list()
        read = sql.SQL("COPY {} ({}) TO STDOUT {}").format(table.ident, columns, options)
        write = sql.SQL("COPY {} ({}) FROM STDIN {}").format(table.ident, columns, options)
        src, dst = self._source(), self._target()
        moved = reported = 0
        dst.execute("BEGIN")
        try:
            with src.cursor().copy(read) as out, dst.cursor() as cur:
                with cur.copy(write) as into:
                    for chunk in out:
                        into.write(chunk)
                        moved += len(chunk)
                        if self.progress and moved - reported >= self.chunk_callback_bytes:
                            reported = moved
                            self.progress(table.label, moved, False)
                rows = cur.rowcount
            dst.execute("COMMIT")
        except psycopg.OperationalError as exc:
            lost = [end for end, conn in (("target", dst), ("source", src)) if conn.broken]
            self._drop_sessions()
            if lost:
                raise ConnectionLost(f"copying {table.label}: the connection to the {' and the '.join(lost)} "
                                     f"was lost ({str(exc).strip()})") from exc
            raise
        except BaseException:
            self._drop_sessions()
            raise
        if self.progress:
            self.progress(table.label, moved, True)
        return TableResult(table.label, rows, moved, time.monotonic() - started, fmt)

    def copy_with_fallback(self, table: Table) -> TableResult:
        if not table.binary_safe:
            return self.copy(table, "text")
        try:
            return self.copy(table, "binary")
        except psycopg.errors.DataError:
            # A binary form the target reads differently: text is the portable form.
            return self.copy(table, "text")

    def copy_all(self, tables: list[Table], jobs: int) -> list[TableResult]:
        """Copy every table (largest first: the longest table starts first and
        no worker sits idle at the end). The first failure stops the rest."""
        results: list[TableResult] = []
        ordered = sorted(tables, key=lambda t: t.bytes, reverse=True)
        try:
            with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="pgharbor-copy") as pool:
                futures = [pool.submit(self.copy_with_fallback, t) for t in ordered]
                for future in as_completed(futures):
                    try:
                        results.append(future.result())
                    except BaseException:
                        for other in futures:
                            other.cancel()
                        raise
        finally:
            with self._lock:
                for conn in self._sessions:
                    conn.close()
                self._sessions.clear()
        return sorted(results, key=lambda r: r.table)
