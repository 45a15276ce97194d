"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from migrationdb import Pair, prepare, tls_settings
from pgserver import PgServer, start_server

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL 15 server on loopback, shared by a test session."""
    server = start_server()
    yield server
    server.remove()


@pytest.fixture
def pg_server_factory() -> Iterator[Callable[..., PgServer]]:
    """Start as many extra servers as a test needs (source and target, say)."""
    servers: list[PgServer] = []

    def make(settings: dict[str, str] | None = None) -> PgServer:
        server = start_server(settings)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.remove()


@pytest.fixture
def servers(pg_server_factory) -> Iterator[Pair]:
    """A source with the awkward migration database and an empty, TLS-enabled
    target prepared like roles/postgresql_server prepares one."""
    # Not under pytest's tmp_path: that is private to root, the server runs as postgres.
    tls_dir = Path(tempfile.mkdtemp(prefix="pgharbor-tls-"))
    try:
        settings, ca_file = tls_settings(tls_dir)
        source, target = pg_server_factory(), pg_server_factory(settings)
        prepare(source, target)
        yield Pair(source, target, ca_file)
    finally:
        shutil.rmtree(tls_dir, ignore_errors=True)
