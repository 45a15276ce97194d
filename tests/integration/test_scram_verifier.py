"""The SCRAM verifier computed on the controller is one PostgreSQL accepts:
a role given only the verifier logs in with the password, and not without it."""

from __future__ import annotations

import importlib.util

import psycopg
import pytest
from conftest import REPO
from psycopg import sql

_spec = importlib.util.spec_from_file_location("scram", REPO / "roles/postgresql_server/filter_plugins/scram.py")
scram = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scram)


@pytest.mark.parametrize("password", ["plain-password", "with:colon and \\ backslash", "ünïcödé-Pässwört"])
def test_role_with_only_the_verifier_logs_in(pg_server, password):
    verifier = scram.scram_verifier(password, "scram_user")
    with pg_server.connect() as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS scram_user"))
        conn.execute(sql.SQL("CREATE ROLE scram_user LOGIN PASSWORD {}").format(sql.Literal(verifier)))
        stored = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_user'").fetchone()[0]
        conn.commit()
    assert stored == verifier  # PostgreSQL kept it as given, no re-hashing
    with psycopg.connect(pg_server.conninfo(user="scram_user", password=password)) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == "scram_user"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_server.conninfo(user="scram_user", password=password + "x"))


def test_verifier_is_stable_per_user_and_password():
    one = scram.scram_verifier("secret", "alice")
    assert one == scram.scram_verifier("secret", "alice")  # second run changes nothing
    salt = one.split("$")[1].split(":")[1]
    assert salt != scram.scram_verifier("secret", "bob").split("$")[1].split(":")[1]
    assert one != scram.scram_verifier("secret2", "alice")


def test_empty_password_is_refused():
    with pytest.raises(ValueError, match="empty password for user alice"):
        scram.scram_verifier("", "alice")
