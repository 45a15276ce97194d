"""A PostgreSQL server that archives its WAL with pgBackRest, for the
time-travel tests: repo1 on local disk (tier 1) and, with an S3 server,
repo2 in a bucket over HTTPS (tier 3). The configuration file is the
pg_timetravel role's own template, rendered with the role's defaults and
the test's paths, so the tests run what the role writes."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jinja2
import psycopg
import yaml
from pgserver import PgServer, _as_server_user, start_server
from s3server import ADMIN, REGION, S3Server

from pgharbor.timetravel.engine import Pgbackrest

ROLE = Path(__file__).resolve().parents[1] / "roles" / "pg_timetravel"
STANZA = "main"
PASSPHRASE = "test passphrase for repo1"
TIER3_PASSPHRASE = "test passphrase for repo2"


def render_config(**variables) -> str:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("pgbackrest.conf.j2").render(
        {**defaults, "ansible_managed": "written by the tests", **variables})


@dataclass
class Archiving:
    server: PgServer
    engine: Pgbackrest
    home: Path  # the configuration, repo1, the spool and the logs
    s3: S3Server | None = None
    bucket: str = ""
    # Where pgBackRest reaches the S3 server's HTTPS port: a TcpProxy's port, to cut the way.
    s3_port: int = 0
    # The key pgBackRest uses for repo2: the admin's unless a test gives a restricted one.
    s3_key: tuple[str, str] = (ADMIN["aws_access_key_id"], ADMIN["aws_secret_access_key"])

    def write_config(self, **overrides) -> None:
        tier3 = {}
        if self.s3 is not None:
            tier3 = {"pg_timetravel_tier3": {"bucket": self.bucket, "endpoint": "localhost",
                                             "port": self.s3_port or self.s3.tls_port,
                                             "region": REGION, "uri_style": "path", "ca_src": self.s3.ca_file,
                                             "path": "/timetravel"},
                     # where the role installs ca_src: here, the S3 server's own directory
                     "__pg_timetravel_conf_dir": str(Path(self.s3.ca_file).parent),
                     "pg_timetravel_tier3_access_key_id": self.s3_key[0],
                     "pg_timetravel_tier3_secret_access_key": self.s3_key[1],
                     "pg_timetravel_tier3_cipher_passphrase": TIER3_PASSPHRASE}
        text = render_config(**{
            "pg_timetravel_stanza": STANZA, "pg_timetravel_cipher_passphrase": PASSPHRASE,
            "pg_timetravel_data_directory": str(self.server.datadir), "pg_timetravel_port": self.server.port,
            "pg_timetravel_socket_directory": str(self.server.basedir),
            "pg_timetravel_repo_path": str(self.home / "repo1"), "pg_timetravel_spool_path": str(self.home / "spool"),
            "pg_timetravel_log_path": str(self.home / "log"), "pg_timetravel_process_max": 1,
            **tier3, **overrides})
        path = Path(self.engine.config)
        path.write_text(text)
        path.chmod(0o600)
        _own(path)

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return self.server.connect(dbname, autocommit=True)

    def archived(self, timeout: float = 60) -> str:
        """Switch to a new WAL segment and wait until the finished one is in every repository."""
        with self.connect() as conn:
            segment = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
            deadline = time.monotonic() + timeout
            while True:
                done, failed = conn.execute(
                    "SELECT last_archived_wal >= %s, last_failed_wal FROM pg_stat_archiver", (segment,)).fetchone()
                if done:
                    return segment
                if time.monotonic() > deadline:
                    raise AssertionError(f"WAL {segment} not archived within {timeout} s (last failed: {failed})")
                time.sleep(0.2)

    def server_now(self):
        with self.connect() as conn:
            return conn.execute("SELECT clock_timestamp()").fetchone()[0]

    def remove(self) -> None:
        self.server.remove()
        shutil.rmtree(self.home, ignore_errors=True)


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(path, pw.pw_uid, pw.pw_gid)


def start_archiving(s3: S3Server | None = None, bucket: str = "", settings: dict[str, str] | None = None,
                    s3_port: int = 0, s3_key: tuple[str, str] | None = None) -> Archiving:
    """A server archiving through pgBackRest into a created stanza, with no backup yet."""
    # The configuration's path is known before the server exists: the archive_command names it.
    home = Path(tempfile.mkdtemp(prefix="pgharbor-tt-"))
    _own(home)
    config = home / "pgbackrest.conf"
    server = start_server({
        "wal_level": "replica", "archive_mode": "on", "archive_timeout": "60",
        "archive_command": f"pgbackrest --config={config} --stanza={STANZA} archive-push %p",
        **(settings or {})})
    for name in ("log", "spool"):
        (home / name).mkdir()
        _own(home / name)
    archiving = Archiving(server, Pgbackrest(str(config), STANZA, tuple(_as_server_user())), home, s3, bucket,
                          s3_port)
    if s3_key is not None:
        archiving.s3_key = s3_key
    try:
        archiving.write_config()
        archiving.engine.run("stanza-create")
        archiving.engine.run("check")
    except BaseException:
        archiving.remove()
        raise
    return archiving
