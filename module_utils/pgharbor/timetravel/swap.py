"""The past becomes live: the past copy's database is loaded into the live
server beside the live one, then swapped in by name (pg/swap.py). The
application is disconnected only for two renames; the database it had is
kept under a new name, and undo puts it back. The past copy stays until it
is dropped.

Why a database and not the whole cluster: the live cluster goes on as it
was, on its timeline, archiving to every repository, so the restorable
window has no gap across the swap and a later time travel can still reach
either side of it; the other databases of the server are not taken back in
time; and the swap is the same one restore.yml makes, with the same undo.

The load is pg_dump from the copy piped into pg_restore on the live server
(OS pipes, no data through Python), with owners and grants as they were:
the roles are the live server's."""

from __future__ import annotations

import time

import psycopg

from ..common.pipeline import Pipeline, PipelineError, Stage
from ..errors import PgharborError
from ..pg.conninfo import libpq_env
from ..pg.databases import create_database, database_conninfo, drop_database
from ..pg.sections import pg_bindir
from ..pg.swap import COMPLETE, PARTIAL, comment, owner, set_comment
from .pastcopy import PastCopy

# How time_travel.yml undoes a swap, named when a second swap is asked for first.
UNDO_WITH = "time_travel.yml with -e time_travel_action=undo"


class PastSwapError(PgharborError, RuntimeError):
    pass


def loaded_name(database: str) -> str:
    """The name the past database is loaded under, beside the live one, until the swap."""
    return f"{database}_past"


def load_past(copy: PastCopy, admin_conninfo: str, database: str) -> tuple[str, bool, float]:
    """Load database from the past copy into a new database beside the live one, owned like it.
    Returns (its name, whether it was loaded now, seconds); a complete load of the same past
    copy is kept as it is, anything else under that name is refused."""
    name = loaded_name(database)
    label = f"past copy of {copy.record().get('target', '?')}"
    with psycopg.connect(admin_conninfo, autocommit=True) as admin:
        mark = comment(admin, name)
        if mark == COMPLETE.format(id=label):
            return name, False, 0.0
        if mark is not None:
            raise PastSwapError(f"database {name} exists on the live server and is not a complete load of the {label}:"
                                f" drop it if nobody needs it (DROP DATABASE {name}), then swap again")
        if comment(admin, database) is None:
            raise PastSwapError(f"database {database} does not exist on the live server: nothing to swap with. To "
                                "take it back from the past, extract its tables, or restore.yml with a logical backup")
        create_database(admin_conninfo, name, owner(admin, database))
        set_comment(admin, name, PARTIAL.format(id=label))
    begin = time.monotonic()
    source, source_env = libpq_env(copy.conninfo(database))
    target, target_env = libpq_env(database_conninfo(admin_conninfo, name))
    try:
        Pipeline([Stage("pg_dump", [str(pg_bindir() / "pg_dump"), "--format=custom", f"--dbname={source}"],
                        env=source_env),
                  Stage("pg_restore", [str(pg_bindir() / "pg_restore"), "--exit-on-error", f"--dbname={target}"],
                        env=target_env)]).run()
    except PipelineError as exc:
        drop_database(admin_conninfo, name)
        raise PastSwapError(f"loading {database} from the {label} into {name} failed (dropped): {exc}") from None
    except BaseException:
        drop_database(admin_conninfo, name)
        raise
    with psycopg.connect(admin_conninfo, autocommit=True) as admin:
        set_comment(admin, name, COMPLETE.format(id=label))
    return name, True, round(time.monotonic() - begin, 3)
