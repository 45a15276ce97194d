"""A source and a target for the migration tests.

The source holds the awkward database (fixtures/awkward.sql). The target is
prepared the way roles/postgresql_server prepares one: TLS with a certificate
for 127.0.0.1, a NOLOGIN owner that owns the database and its schema, a
migrator that logs in and is a member of the owner.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from certs import make_ca, make_leaf, write_cert, write_key
from pgserver import PgServer
from psycopg import sql

AWKWARD = Path(__file__).parent / "integration" / "fixtures" / "awkward.sql"
DBNAME = "appdb"
OWNER = "app_owner"
MIGRATOR = "migrator"
MIGRATOR_PASSWORD = "migrator-Secret-1"


@dataclass
class Pair:
    source: PgServer
    target: PgServer
    ca_file: str

    def source_conninfo(self, dbname: str = DBNAME) -> str:
        return self.source.conninfo(dbname)

    def target_conninfo(self, password: str = MIGRATOR_PASSWORD, verified: bool = False, dbname: str = DBNAME) -> str:
        conninfo = self.target.conninfo(dbname, user=MIGRATOR, password=password)
        if verified:
            conninfo += f" sslmode=verify-full sslrootcert={self.ca_file}"
        return conninfo


def tls_settings(directory: Path) -> tuple[dict[str, str], str]:
    """Server settings for TLS with a fresh CA; returns them and the CA file.
    The directory must be one the server's OS user can reach."""
    ca = make_ca("migration test CA")
    leaf, key = make_leaf(ca, cn="127.0.0.1", dns=("localhost",), ips=("127.0.0.1",))
    ca_file = write_cert(directory / "ca.crt", ca[0])
    cert_file = write_cert(directory / "server.crt", leaf)
    key_file = write_key(directory / "server.key", key)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (directory, Path(cert_file), Path(key_file)):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    return {"ssl": "on", "ssl_cert_file": cert_file, "ssl_key_file": key_file}, ca_file


def prepare(source: PgServer, target: PgServer) -> None:
    with source.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DBNAME)))
    with source.connect(DBNAME, autocommit=True) as conn:
        conn.execute(AWKWARD.read_text())
    with target.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(OWNER)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
            sql.Identifier(MIGRATOR), sql.Literal(MIGRATOR_PASSWORD), sql.Identifier(OWNER)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
            sql.Identifier(DBNAME), sql.Identifier(OWNER)))
    with target.connect(DBNAME, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA app AUTHORIZATION {}").format(sql.Identifier(OWNER)))
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
