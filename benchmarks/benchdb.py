"""The generated database the benchmarks share, and small helpers."""

from __future__ import annotations

import os
import subprocess
import sys
import time

DB = "bench"

# Rows per GB of database (measured: about 1.05 GB at scale 1).
GENERATE = """
CREATE SCHEMA bench;
CREATE TABLE bench.customers (id bigint PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL);
INSERT INTO bench.customers
SELECT n, 'customer ' || n, 'c' || n || '@example.test', '2020-01-01'::timestamptz + n * interval '1 minute'
FROM generate_series(1, {customers}) n;
CREATE TABLE bench.orders (id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES bench.customers,
                           amount numeric(12, 2) NOT NULL, placed_at timestamptz NOT NULL);
INSERT INTO bench.orders
SELECT n, 1 + n % {customers}, (n % 100000) / 100.0, '2021-01-01'::timestamptz + n * interval '1 second'
FROM generate_series(1, {orders}) n;
CREATE INDEX ON bench.orders (customer_id);
CREATE TABLE bench.events (id bigint PRIMARY KEY, at timestamptz NOT NULL, kind text NOT NULL, payload jsonb);
INSERT INTO bench.events
SELECT n, '2022-01-01'::timestamptz + n * interval '1 second', 'kind-' || n % 17,
       jsonb_build_object('n', n, 'user', 'u' || n % 5000, 'tags', jsonb_build_array('a' || n % 11, 'b' || n % 13),
                          'note', md5(n::text))
FROM generate_series(1, {events}) n;
CREATE INDEX events_payload ON bench.events USING gin (payload);
CREATE TABLE bench.documents (id bigint PRIMARY KEY, body bytea NOT NULL);
INSERT INTO bench.documents SELECT n, decode(repeat(md5(n::text), 64), 'hex') FROM generate_series(1, {documents}) n;
CREATE SEQUENCE bench.invoice_no;
SELECT setval('bench.invoice_no', 123456);
ANALYZE;
"""


def sizes(scale: float) -> dict[str, int]:
    return {"customers": int(500_000 * scale), "orders": int(2_500_000 * scale), "events": int(2_600_000 * scale),
            "documents": int(120_000 * scale)}


def run(argv: list[str] | str, env: dict | None = None) -> None:
    subprocess.run(argv, check=True, shell=isinstance(argv, str), env={**os.environ, **(env or {})},
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def psql(server, statement: str, db: str = "postgres") -> str:
    with server.connect(db, autocommit=True) as conn:
        cur = conn.execute(statement)
        return str(cur.fetchone()[0]) if cur.description else ""


def generate(server, scale: float) -> int:
    """Create and fill the benchmark database; returns its size in bytes."""
    psql(server, f"CREATE DATABASE {DB}")
    started = time.monotonic()
    with server.connect(DB, autocommit=True) as conn:
        conn.execute(GENERATE.format(**sizes(scale)))
    size = int(psql(server, f"SELECT pg_database_size('{DB}')"))
    print(f"generated {size / 1e9:.2f} GB in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return size
