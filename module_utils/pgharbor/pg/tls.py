"""Where a session runs: over a Unix socket (no network, so no TLS to judge)
or over TCP, and then what TLS the server says the session has
(pg_stat_ssl). The preflight and the connection check both judge a link by
these facts."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


def on_socket(host: str | None) -> bool:
    """libpq's host is a directory for a Unix socket (empty: the default one)."""
    return not host or host.startswith("/")


@dataclass(frozen=True)
class SslState:
    in_use: bool
    version: str | None = None
    cipher: str | None = None
    bits: int | None = None
    # the client certificate's subject, when the client presented one
    client_dn: str | None = None


def ssl_state(conn: psycopg.Connection) -> SslState:
    row = conn.execute("SELECT ssl, version, cipher, bits, client_dn FROM pg_stat_ssl "
                       "WHERE pid = pg_backend_pid()").fetchone()
    if not row or not row[0]:
        return SslState(False)
    return SslState(True, row[1], row[2], row[3], row[4])
