"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
