"""Move a database: schema (pre-data), rows, large objects, sequences, then
the rest of the schema (post-data), all from one exported snapshot of the
source, which stays open until the last piece has been read."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from ..common.atomicfile import replace_file
from ..errors import PgharborError
from ..pg import catalog
from ..pg.sections import Existing, SchemaError, copy_section
from ..pg.session import connect, exported_snapshot
from .tablecopy import ConnectionLost, TableCopier, TableResult, default_jobs


class MigrationError(PgharborError, RuntimeError):
    pass


@dataclass
class MigrationResult:
    tables: list[TableResult]
    sequences: int
    large_objects: int
    seconds: float
    rows: int = field(init=False)
    bytes: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = sum(t.rows for t in self.tables)
        self.bytes = sum(t.bytes for t in self.tables)

    @property
    def throughput_mb_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        data = asdict(self)
        data["throughput_mb_s"] = round(self.throughput_mb_s, 2)
        return data


class StatusFile:
    """Progress for whoever polls (migrate.yml through async_status): written
    atomically, at most once a second per update burst."""

    def __init__(self, path: str | None, total_bytes: int):
        self.path = Path(path) if path else None
        self.total = max(total_bytes, 1)
        self.started = time.monotonic()
        self.done: dict[str, int] = {}
        self.moving: dict[str, int] = {}
        self.phase = "starting"
        self._lock = threading.Lock()
        self._written = 0.0

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self._write(force=True)

    def table(self, label: str, moved: int, finished: bool) -> None:
        with self._lock:
            if finished:
                self.moving.pop(label, None)
                self.done[label] = moved
            else:
                self.moving[label] = moved
        self._write(force=finished)

    def _write(self, force: bool = False) -> None:
        if self.path is None:
            return
        with self._lock:
            now = time.monotonic()
            if not force and now - self._written < 1:
                return
            self._written = now
            moved = sum(self.done.values()) + sum(self.moving.values())
            elapsed = now - self.started
            rate = moved / elapsed if elapsed > 0 else 0
            status = {
                "phase": self.phase,
                "tables_done": len(self.done),
                "tables_in_progress": dict(self.moving),
                "bytes": moved,
                "throughput_mb_s": round(rate / 1e6, 2),
                # On-disk size is only an estimate of the COPY stream's size.
                "eta_seconds": round(max(self.total - moved, 0) / rate) if rate else None,
            }
            replace_file(self.path, json.dumps(status), mode=0o644, durable=False)


def _existing(target: psycopg.Connection) -> Existing:
    schemas = {r[0] for r in target.execute("SELECT nspname FROM pg_namespace")}
    extensions = {r[0] for r in target.execute("SELECT extname FROM pg_extension")}
    return Existing(frozenset(schemas), frozenset(extensions))


LARGE_OBJECT_CHUNK = 1 << 20


def _copy_large_objects(holder: psycopg.Connection, target: psycopg.Connection) -> int:
    """Large objects keep their OIDs (columns of type oid point at them). They
    travel in chunks, so a large object of any size needs little memory here."""
    oids = [r[0] for r in holder.execute("SELECT oid FROM pg_largeobject_metadata ORDER BY oid")]
    target.execute("BEGIN")
    for oid in oids:
        target.execute("SELECT lo_create(%s)", (oid,))
        offset = 0
        while True:
            chunk = holder.execute("SELECT lo_get(%s, %s, %s)", (oid, offset, LARGE_OBJECT_CHUNK)).fetchone()[0]
            if chunk:
                target.execute("SELECT lo_put(%s, %s, %s)", (oid, offset, chunk))
            if len(chunk) < LARGE_OBJECT_CHUNK:
                break
            offset += len(chunk)
    target.execute("COMMIT")
    return len(oids)


def _set_sequences(target: psycopg.Connection, sequences: list[catalog.Sequence]) -> None:
    target.execute("BEGIN")
    for seq in sequences:
        target.execute("SELECT setval(format('%%I.%%I', %s::text, %s::text)::regclass, %s, %s)",
                       (seq.schema, seq.name, seq.last_value, seq.is_called))
    target.execute("COMMIT")


# The target database's comment says whether it holds a whole migration:
# whoever finds a partial one (after a crash, say) can tell.
PARTIAL_MARK = "pgharbor: PARTIAL migration, started"
COMPLETE_MARK = "pgharbor: migrated"


def _mark(control: psycopg.Connection, text: str) -> None:
    control.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(
        sql.Identifier(control.info.dbname), sql.Literal(text)))


def migrate(source: str, target: str, *, target_role: str | None = None, jobs: int | None = None,
            status_path: str | None = None, allow_nonempty_target: bool = False) -> MigrationResult:
    """Copy the source database into the empty target database."""
    started = time.monotonic()
    jobs = jobs or default_jobs()
    control = connect(target, "pgharbor migrate")
    status = StatusFile(status_path, 0)
    try:
        if target_role:
            control.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(target_role)))
        present = catalog.user_relations(control)
        if present and not allow_nonempty_target:
            raise MigrationError(
                f"the target database is not empty ({len(present)} relations, e.g. {', '.join(present[:3])}); "
                "migrate into an empty database, or drop or rename this one first (rollback.yml keeps a partial "
                "target renamed)")
        existing = _existing(control)
        _mark(control, f"{PARTIAL_MARK} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
        return _copy_everything(source, target, control, status, existing, target_role, jobs, started)
    except (psycopg.Error, ConnectionLost, SchemaError) as exc:
        status.set_phase(f"failed in {status.phase}")
        raise MigrationError(f"{status.phase}: {exc}; the target database is partial (its comment says so): "
                             "rollback.yml puts the application back on the source and keeps the target renamed "
                             "for inspection") from exc
    finally:
        control.close()


def _copy_everything(source: str, target: str, control: psycopg.Connection, status: StatusFile, existing: Existing,
                     target_role: str | None, jobs: int, started: float) -> MigrationResult:
    """Everything is read under one snapshot, held open until the post-data
    section has been dumped."""
    with exported_snapshot(source) as (holder, snapshot):
        tables = catalog.tables(holder)
        sequences = catalog.sequences(holder)
        status.total = max(sum(t.bytes for t in tables), 1)
        status.set_phase("schema (pre-data)")
        copy_section("pre-data", source, target, snapshot, existing=existing, target_role=target_role)
        status.set_phase("rows")
        copier = TableCopier(source, target, snapshot, target_role=target_role, progress=status.table)
        results = copier.copy_all(tables, jobs)
        status.set_phase("large objects and sequences")
        large_objects = _copy_large_objects(holder, control)
        _set_sequences(control, sequences)
        status.set_phase("schema (post-data: indexes, constraints, triggers)")
        copy_section("post-data", source, target, snapshot, existing=existing, target_role=target_role,
                     jobs=jobs)
    status.set_phase("analyze")
    control.execute("ANALYZE")
    result = MigrationResult(results, len(sequences), large_objects, time.monotonic() - started)
    _mark(control, f"{COMPLETE_MARK} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: {result.rows} rows "
                   f"in {len(results)} tables")
    status.set_phase("done")
    return result
