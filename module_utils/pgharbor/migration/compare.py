"""pg_compare: schema and data of two databases, each side read in one
snapshot with the fixed session settings. Equal means equal in every part;
the report says what differs."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from ..pg.session import connect
from .datacompare import DataReport, Side, compare_rows
from .schemacompare import SchemaReport, compare_schema
from .tablecopy import default_jobs


@dataclass
class CompareReport:
    schema: SchemaReport
    data: DataReport
    seconds: float

    @property
    def equal(self) -> bool:
        return self.schema.equal and self.data.equal

    def differences(self) -> list[str]:
        """One line per difference, for a failure message."""
        found = [f"schema {kind.kind}: {len(kind.missing_on_target)} missing on target, "
                 f"{len(kind.extra_on_target)} extra, {len(kind.changed)} changed"
                 for kind in self.schema.kinds if not kind.equal]
        for table in self.data.tables:
            if not table.equal:
                found.append(
                    f"table {table.table}: {table.source_rows} rows on source, {table.target_rows} on target, "
                    f"{len(table.differing_chunks)} differing chunks; missing on target e.g. "
                    f"{table.missing_on_target}, extra {table.extra_on_target}, changed {table.changed}")
        found += [f"table {name} only on the source" for name in self.data.only_on_source]
        found += [f"table {name} only on the target" for name in self.data.only_on_target]
        found += [f"sequence {line}" for line in self.data.sequences]
        found += self.data.large_objects
        return found

    def as_dict(self) -> dict:
        return {
            "equal": self.equal,
            "seconds": round(self.seconds, 3),
            "differences": self.differences(),
            "schema_diff": self.schema.diff_text(),
            "schema_counts": self.schema.counts,
            "tables": [asdict(t) | {"equal": t.equal} for t in self.data.tables],
            "sequences": self.data.sequences,
            "large_objects": self.data.large_objects,
        }


def compare(source: str, target: str, *, role_map: dict[str, str] | None = None,
            ignore_roles: list[str] | None = None, chunk_rows: int = 10000, examples: int = 5,
            jobs: int | None = None) -> CompareReport:
    """jobs: hashing queries at a time over both sides (default: as many as
    the copy would use)."""
    started = time.monotonic()
    with connect(source, "pgharbor compare") as src, connect(target, "pgharbor compare") as dst:
        snapshots = []
        for conn, conninfo in ((src, source), (dst, target)):
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshots.append(Side(conninfo, conn.execute("SELECT pg_export_snapshot()").fetchone()[0]))
        schema = compare_schema(src, dst, role_map=role_map, ignore_roles=ignore_roles)
        data = compare_rows(src, dst, sides=(snapshots[0], snapshots[1]), chunk_rows=chunk_rows, examples=examples,
                            jobs=jobs or default_jobs())
    return CompareReport(schema, data, time.monotonic() - started)
