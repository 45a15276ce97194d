"""Fixtures of the migration tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrationdb import Pair, prepare, tls_settings


@pytest.fixture
def servers(pg_server_factory) -> Iterator[Pair]:
    """A source with the awkward database and an empty, TLS-enabled target."""
    # Not under pytest's tmp_path: that is private to root, the server runs as postgres.
    tls_dir = Path(tempfile.mkdtemp(prefix="pgharbor-tls-"))
    try:
        settings, ca_file = tls_settings(tls_dir)
        source, target = pg_server_factory(), pg_server_factory(settings)
        prepare(source, target)
        yield Pair(source, target, ca_file)
    finally:
        shutil.rmtree(tls_dir, ignore_errors=True)
