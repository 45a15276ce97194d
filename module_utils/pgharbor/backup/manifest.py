"""The backup format: an encrypted artefact and its manifest, side by side.

    <id>.dump.zst.gpg     pg_dump custom format, zstd-compressed, OpenPGP-encrypted
    <id>.manifest.json    what the artefact holds and how to check it

The manifest is written last, at every tier: a file without its manifest is
not a backup (a crash, a transfer cut short), and listing, retention and
restore ignore it. Files being written carry a .partial suffix until they
are complete, so even a directory listing never shows a half-written file
under its final name. Shipping a backup is copying those two files.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from ..common.atomicfile import PARTIAL_SUFFIX  # noqa: F401 (part of the format)
from ..errors import PgharborError

FORMAT = "pgharbor-backup/1"
ARTEFACT_SUFFIX = ".dump.zst.gpg"
MANIFEST_SUFFIX = ".manifest.json"
# <database>-<UTC time>: sorts by time for one database; database names may
# hold almost anything, so they are reduced to a safe alphabet.
ID_RE = re.compile(r"^[A-Za-z0-9_.-]+-\d{8}T\d{6}Z$")


class ManifestError(PgharborError, ValueError):
    pass


def backup_id(database: str, when: datetime) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", database) or "db"
    return f"{safe}-{when.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"


def utc_text(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def now_text() -> str:
    return utc_text(datetime.now(timezone.utc))


def parse_utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class TableEntry:
    rows: int
    # sha256 over the table's chunk hashes in key order, when asked for.
    hash: str | None = None


@dataclass
class Manifest:
    id: str
    database: str
    server: str
    server_version: str
    started: str
    finished: str
    snapshot: str
    tools: dict[str, str]
    compression: dict[str, object]
    encryption: dict[str, object]
    artefact: str
    size: int
    sha256: str
    tables: dict[str, TableEntry] = field(default_factory=dict)
    large_objects: int = 0
    sequences: dict[str, int] = field(default_factory=dict)
    format: str = FORMAT

    @property
    def started_at(self) -> datetime:
        return parse_utc(self.started)

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else "?"
            raise ManifestError(f"not a {FORMAT} manifest (format: {found})")
        try:
            data["tables"] = {name: TableEntry(**entry) for name, entry in data.get("tables", {}).items()}
            manifest = cls(**data)
        except TypeError as exc:
            raise ManifestError(f"missing or unknown field: {exc}") from exc
        if not ID_RE.match(manifest.id) or manifest.artefact != manifest.id + ARTEFACT_SUFFIX:
            raise ManifestError(f"bad id or artefact name: {manifest.id!r}, {manifest.artefact!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", manifest.sha256):
            raise ManifestError("sha256 is not a SHA-256 hex digest")
        return manifest
