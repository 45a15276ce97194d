"""restore.yml's steps on a real server: restore beside the live database
while the application works, swap with a short disconnect, undo, and the
refusals that keep anything from being lost."""

from __future__ import annotations

import psycopg
import pytest
from backuptest import counts, keyring_with, settings
from psycopg import sql

from pgharbor.backup.keys import secret_keyring
from pgharbor.backup.restore import RestoreError
from pgharbor.backup.store import Store
from pgharbor.backup.swap import restore_new
from pgharbor.backup.take import take_backup
from pgharbor.pg.swap import SwapError, swap, undo

LIVE = "shop"


@pytest.fixture
def shop(pg_server, backup_keys, tmp_path):
    """A live database with an owner, a grant and a setting of its own, and a backup of it."""
    with pg_server.connect(autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS shop WITH (FORCE)")
        conn.execute("DO $$BEGIN CREATE ROLE shop_owner NOLOGIN; CREATE ROLE shop_app LOGIN PASSWORD 'app-Secret-1';"
                     " EXCEPTION WHEN duplicate_object THEN NULL; END$$")
        conn.execute("CREATE DATABASE shop OWNER shop_owner")
        conn.execute("REVOKE ALL ON DATABASE shop FROM PUBLIC")
        conn.execute("GRANT CONNECT ON DATABASE shop TO shop_app")
        conn.execute("ALTER DATABASE shop SET work_mem = '8MB'")
    with pg_server.connect(LIVE, autocommit=True) as conn:
        conn.execute("SET ROLE shop_owner")
        conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text)")
        conn.execute("INSERT INTO orders SELECT i, 'item ' || i FROM generate_series(1, 500) i")
        conn.execute("GRANT SELECT, INSERT ON orders TO shop_app")
    directory = tmp_path / "tier1"
    directory.mkdir()
    keyring = keyring_with(tmp_path, backup_keys.escrow)
    take_backup(settings(pg_server, directory, keyring, [backup_keys.escrow.fingerprint], dbname=LIVE))
    [backup] = Store(directory).backups()
    return backup


def databases(server) -> list[str]:
    with server.connect() as conn:
        return [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'shop%' ORDER BY 1")]


def test_restore_swap_undo(pg_server, backup_keys, shop, tmp_path):
    admin = pg_server.conninfo()
    state = tmp_path / "restore-state.json"
    # the application changes data after the backup: that is what a restore takes back
    with pg_server.connect(LIVE, autocommit=True) as conn:
        conn.execute("DELETE FROM orders WHERE id > 100")
    with secret_keyring(backup_keys.escrow.secret) as keyring:
        changed, preview = restore_new(shop, keyring, admin, LIVE, "shop_restore")
        assert changed and preview.tables == {"public.orders": 500} and not preview.differences
        # the live database was untouched meanwhile, and a second run keeps the restore
        assert counts(pg_server, LIVE)["public.orders"] == 100
        again, _ = restore_new(shop, keyring, admin, LIVE, "shop_restore")
        assert not again
    result = swap(admin, LIVE, "shop_restore", state)
    assert result["changed"] and result["disconnected_seconds"] < 30
    assert counts(pg_server, LIVE)["public.orders"] == 500
    previous = result["previous"]
    assert counts(pg_server, previous)["public.orders"] == 100
    # the application logs in to the restored database with its own grants and settings
    app = pg_server.conninfo(LIVE, user="shop_app", password="app-Secret-1")
    with psycopg.connect(app, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone()[0] == 500
        assert conn.execute("SHOW work_mem").fetchone()[0] == "8MB"
        conn.execute("INSERT INTO orders VALUES (1000, 'after the restore')")
    assert not swap(admin, LIVE, "shop_restore", state)["changed"]
    # undo: the database the swap replaced is live again, the restored one kept
    undone = undo(admin, state)
    assert undone["changed"]
    assert counts(pg_server, LIVE)["public.orders"] == 100
    assert counts(pg_server, undone["kept"])["public.orders"] == 501
    assert not undo(admin, state)["changed"]
    assert set(databases(pg_server)) == {LIVE, undone["kept"]}


def test_refusals(pg_server, backup_keys, shop, tmp_path):
    admin = pg_server.conninfo()
    with pg_server.connect(autocommit=True) as conn:
        conn.execute("CREATE DATABASE shop_other")
    with secret_keyring(backup_keys.escrow.secret) as keyring:
        with pytest.raises(RestoreError, match="shop_other exists and is not a complete restore"):
            restore_new(shop, keyring, admin, LIVE, "shop_other")
    with pytest.raises(SwapError, match="shop_other is not a complete pgharbor restore"):
        swap(admin, LIVE, "shop_other", tmp_path / "state.json")
    # a damaged backup never becomes a database
    data = bytearray(shop.artefact.read_bytes())
    data[100] ^= 0xFF
    shop.artefact.write_bytes(bytes(data))
    with secret_keyring(backup_keys.escrow.secret) as keyring:
        with pytest.raises(RestoreError, match="checksum mismatch"):
            restore_new(shop, keyring, admin, LIVE, "shop_restore")
    assert "shop_restore" not in databases(pg_server)
    with pg_server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE shop_other"))
