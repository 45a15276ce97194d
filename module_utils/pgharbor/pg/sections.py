"""The schema travels with pg_dump and pg_restore, in two sections.

pre-data (types, tables, functions, sequences, views) is restored before the
rows arrive; post-data (indexes, constraints, triggers, rules, policies) after
them, so that no trigger fires and no foreign key is checked during the load
and indexes are built once. Both sections come from the migration's exported
snapshot. Objects are created by the target's owner role (pg_restore --role,
--no-owner); privileges are not copied: the target has its own privilege
model (roles/postgresql_server).
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import PgharborError
from .conninfo import libpq_env


class SchemaError(PgharborError, RuntimeError):
    pass


def pg_bindir() -> Path:
    """The newest PostgreSQL client installed (Debian keeps each major in
    /usr/lib/postgresql/<major>/bin); pg_dump must be at least the source's."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"), key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise SchemaError("no pg_dump under /usr/lib/postgresql/*/bin: install postgresql-client-<major>")
    return versions[-1].parent


def _run(argv: list[str], env: dict[str, str], what: str) -> str:
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SchemaError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class Existing:
    """What the target already has that the dump would create again: the
    schemas the server role made, and extensions the DBA installed."""
    schemas: frozenset[str]
    extensions: frozenset[str]


# A TOC line: "<id>; <tableoid> <oid> <DESC words> <schema or -> <name> <owner>".
TOC_LINE = re.compile(r"^(\d+); \d+ \d+ (.+)$")
SKIPPED_DESCS = ("ACL ", "DEFAULT ACL ", "BLOB ", "BLOBS ", "LARGE OBJECT ", "DATABASE PROPERTIES ")


def filter_toc(listing: str, existing: Existing) -> str:
    """Drop from a pg_restore -l listing what must not be restored: objects
    that exist on the target already, privileges, large objects (copied by
    the migration itself with their OIDs)."""
    kept = []
    for line in listing.splitlines():
        match = TOC_LINE.match(line)
        if not match:
            kept.append(line)
            continue
        rest = match.group(2)
        if rest.startswith(SKIPPED_DESCS):
            continue
        words = rest.split(" ")
        if words[0] == "SCHEMA" and words[2] in existing.schemas:
            continue
        if words[0] == "EXTENSION" and words[2] in existing.extensions:
            continue
        if words[:2] == ["COMMENT", "-"] and words[2] == "EXTENSION" and words[3] in existing.extensions:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def copy_section(section: str, source: str, target: str, snapshot: str, *, existing: Existing,
                 target_role: str | None, jobs: int = 1, bindir: Path | None = None) -> None:
    """Dump one section from the source under snapshot and restore it into
    the target."""
    bindir = bindir or pg_bindir()
    source_conninfo, source_env = libpq_env(source)
    target_conninfo, target_env = libpq_env(target)
    with tempfile.TemporaryDirectory(prefix="pgharbor-schema-") as tmp:
        archive = Path(tmp) / f"{section}.dump"
        listing = Path(tmp) / f"{section}.list"
        _run([str(bindir / "pg_dump"), "--format=custom", f"--section={section}", f"--snapshot={snapshot}",
              f"--file={archive}", f"--dbname={source_conninfo}"], source_env, f"pg_dump --section={section}")
        toc = filter_toc(_run([str(bindir / "pg_restore"), "--list", str(archive)], source_env, "pg_restore --list"),
                         existing)
        listing.write_text(toc)
        argv = [str(bindir / "pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
                f"--use-list={listing}", f"--dbname={target_conninfo}"]
        if target_role:
            argv.append(f"--role={target_role}")
        argv += ["--single-transaction"] if jobs <= 1 else [f"--jobs={jobs}"]
        _run(argv + [str(archive)], target_env, f"pg_restore --section={section}")
