"""Whole databases on a server: made empty for a restore, dropped, reached
by name. Used by the logical restores and drills and by time travel's swap."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo


def database_conninfo(conninfo: str, dbname: str) -> str:
    return make_conninfo(conninfo, dbname=dbname)


def create_database(admin_conninfo: str, name: str, owner: str | None = None) -> None:
    """An empty database for a restore: from template0, so that nothing
    added to template1 collides with what the dump creates."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
        if owner:
            query += sql.SQL(" OWNER {}").format(sql.Identifier(owner))
        conn.execute(query)


def drop_database(admin_conninfo: str, name: str) -> None:
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
