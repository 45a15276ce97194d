"""Which member of a cluster acts for the jobs only one of them must do.

In a Patroni cluster every DB server has the backup layers installed and their
timers running, because any of them may be the primary tomorrow. Each run
asks its own server what it is now (pg_is_in_recovery(): the server's own
word, which is right even while Patroni's view is changing) and acts only on
the member the inventory chose: the primary, or a standby to spare the
primary. A single server is always the primary, so it always acts.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ..common.settings import ConfigError
from ..errors import PgharborError

MEMBERS = ("primary", "standby")


class MemberError(PgharborError):
    """The server could not say what it is."""


@dataclass(frozen=True)
class Acting:
    acting: bool
    # what the server is now: primary or standby
    role: str
    # for the log and status: who does the job, and the setting that chose
    reason: str


def server_role(conninfo: str) -> str:
    """primary or standby, as the server says now."""
    try:
        with psycopg.connect(conninfo, connect_timeout=10) as conn:
            return "standby" if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] else "primary"
    except psycopg.Error as exc:
        raise MemberError(f"cannot ask the server whether it is the primary or a standby: "
                          f"{str(exc).strip().splitlines()[0]}") from exc


def acting(conninfo: str, chosen: str, job: str, setting: str = "") -> Acting:
    """Whether this server does job, given the member chosen (primary or standby) in setting (none: the
    job is the primary's by its nature)."""
    if chosen not in MEMBERS:
        raise ConfigError(f"{setting} is {chosen!r}: it must be one of {', '.join(MEMBERS)}")
    try:
        role = server_role(conninfo)
    except MemberError as exc:
        # the server does not answer: the job goes on, fails on it and is recorded as failed, naming why
        return Acting(True, "unknown", str(exc))
    chose = f" ({setting}: {chosen})" if setting else ""
    if role == chosen:
        return Acting(True, role, f"this server is the {role}, which does {job}{chose}")
    return Acting(False, role, f"this server is a {role}: the {chosen} does {job}{chose}")
