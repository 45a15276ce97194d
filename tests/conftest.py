"""Fixtures shared by the unit and integration tests."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from backuptest import Keys, create_awkward
from gpgtest import make_key
from migrationdb import Pair, prepare, tls_settings
from pgserver import PgServer, start_server
from s3server import S3Server, start_s3
from sshserver import SshServer, keygen, start_sshd

from pgharbor.tiers.ssh import SshTarget

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


@contextmanager
def migration_pair() -> Iterator[Pair]:
    """A source with the awkward migration database and an empty, TLS-enabled
    target prepared like roles/postgresql_server prepares one."""
    # Not under pytest's tmp_path: that is private to root, the server runs as postgres.
    tls_dir = Path(tempfile.mkdtemp(prefix="pgharbor-tls-"))
    started: list[PgServer] = []
    try:
        settings, ca_file = tls_settings(tls_dir)
        started.append(start_server())
        started.append(start_server(settings))
        prepare(*started)
        yield Pair(started[0], started[1], ca_file)
    finally:
        for server in started:
            server.remove()
        shutil.rmtree(tls_dir, ignore_errors=True)


@pytest.fixture
def servers() -> Iterator[Pair]:
    """A migration's source and target of its own, for a test that changes them."""
    with migration_pair() as pair:
        yield pair


@pytest.fixture(scope="module")
def module_servers() -> Iterator[Pair]:
    """A migration's source and target shared by a module's tests (which change copies only)."""
    with migration_pair() as pair:
        yield pair


@pytest.fixture(scope="session")
def backup_keys() -> Keys:
    """Real OpenPGP keys: operations (with a passphrase), escrow, one that
    expired in 2020, and one that is nobody's recipient."""
    return Keys(ops=make_key("ops <ops@example.test>", passphrase="ops-Secret-1"),
                escrow=make_key("escrow <escrow@example.test>"),
                expired=make_key("old <old@example.test>", expire="1d", faked_time="20200101T000000"),
                stranger=make_key("stranger <stranger@example.test>"))


@pytest.fixture(scope="module")
def awkward_server() -> Iterator[PgServer]:
    """A server holding the awkward database as appdb (read-only use: tests
    that write make a database of their own)."""
    server = start_server()
    try:
        create_awkward(server)
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """The moto server on loopback, over real HTTP; each test uses a bucket of its own."""
    server = start_s3()
    yield server
    server.stop()


@pytest.fixture
def sshd(tmp_path) -> Iterator[SshServer]:
    """A real sshd on loopback (see tests/sshserver.py)."""
    server = start_sshd(tmp_path / "sshd")
    yield server
    server.stop()


@pytest.fixture
def tier2_host(sshd, tmp_path):
    """The backup server's directories for db1 and db1's restricted key."""
    root = tmp_path / "backupserver"
    dirs = {name: root / name / "db1" for name in ("incoming", "store", "quarantine")}
    for d in dirs.values():
        d.mkdir(parents=True, mode=0o700)
    identity = tmp_path / "db1_ed25519"
    public = keygen(identity, "db1")
    sshd.authorize(public, f'restrict,command="rrsync -wo -no-del {dirs["incoming"]}"')
    target = SshTarget(host="127.0.0.1", port=sshd.port, user=sshd.user, identity=str(identity),
                       known_hosts=str(sshd.known_hosts(tmp_path / "known_hosts")), retries=0)
    return target, dirs
