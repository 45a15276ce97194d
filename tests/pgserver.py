"""Throwaway PostgreSQL servers for the tests: initdb + pg_ctl from Debian's
postgresql-15, on 127.0.0.1 with a free port, removed afterwards.

Works as root (CI) by running the server binaries as the ``postgres`` OS user,
since initdb refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

PG_BINDIR = Path(os.environ.get("PGHARBOR_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user() -> list[str]:
    """Prefix that runs a server binary as a non-root user when we are root."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PgServer:
    """One PostgreSQL server that exists only for a test run."""

    basedir: Path
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    settings: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"

    @property
    def datadir(self) -> Path:
        return self.basedir / "data"

    @property
    def logfile(self) -> Path:
        return self.basedir / "server.log"

    def conninfo(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        return psycopg.conninfo.make_conninfo(
            host=self.host,
            port=self.port,
            dbname=dbname,
            user=user,
            password=self.password if password is None else password,
            connect_timeout=5,
        )

    def connect(self, dbname: str = "postgres", **kwargs) -> psycopg.Connection:
        return psycopg.connect(self.conninfo(dbname), **kwargs)

    def _run(self, *argv: str) -> None:
        cmd = [*_as_server_user(), *argv]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}\n{log}")

    def init(self) -> None:
        pwfile = self.basedir / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown_to_server_user(pwfile)
        self._run(
            str(PG_BINDIR / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER,
            "--pwfile", str(pwfile), "--auth-local=peer", "--auth-host=scram-sha-256",
            "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        )
        pwfile.unlink()

    def start(self) -> None:
        self.port = self.port or free_port()
        options = {
            "listen_addresses": self.host,
            "port": str(self.port),
            "unix_socket_directories": str(self.basedir),
            # A throwaway server: durability costs time and buys nothing here.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **self.settings,
        }
        # pg_ctl hands -o to a shell: each setting quoted, so a value may hold
        # spaces and % (an archive_command, say).
        opts = " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in options.items())
        self._run(str(PG_BINDIR / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.datadir),
                  "-l", str(self.logfile), "-o", opts)

    def stop(self, mode: str = "fast") -> None:
        """mode immediate: the server vanishes as if its machine died."""
        if (self.datadir / "postmaster.pid").exists():
            self._run(str(PG_BINDIR / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.datadir))

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.basedir, ignore_errors=True)

    def _chown_to_server_user(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)


def start_server(settings: dict[str, str] | None = None) -> PgServer:
    """Create, initialise and start a server; the caller must call remove()."""
    basedir = Path(tempfile.mkdtemp(prefix="pgharbor-pg-"))
    server = PgServer(basedir=basedir, settings=settings or {})
    try:
        server._chown_to_server_user(basedir)
        server.init()
        server.start()
    except BaseException:
        server.remove()
        raise
    return server
