"""The time-travel layer on the DB host: pgBackRest archives every WAL
segment to repo1 on the host's disk and to repo2 in a locked bucket over
HTTPS; time_travel.yml restores the cluster as it was before a DELETE beside
the live one, shows what differs, copies the deleted rows back, swaps the
past database in and undoes it, and drops the copy; verify finds a damaged
file though pgBackRest itself exits 0; the drill takes each repository in
turn."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from backuphost import BACKUP, held_still
from dbhost import DB, archived, psql

CONF = "/etc/pgbackrest/pgbackrest.conf"
PAST = "/var/lib/postgresql/pgharbor-past"


def status() -> dict:
    result = DB.run("runuser -u postgres -- pgharbor-timetravel status --json")
    return {"rc": result.rc, **json.loads(result.stdout)}


def test_the_configuration_is_the_postgres_users_alone():
    conf = DB.file(CONF)
    assert conf.user == "postgres" and conf.mode == 0o600
    assert "repo2-cipher-pass=molecule passphrase of repo2" in conf.content_string
    assert DB.run(f"runuser -u nobody -- cat {CONF}").rc != 0
    assert "archive_mode = on" in DB.file("/etc/postgresql/15/main/postgresql.conf").content_string


def test_both_repositories_have_a_full_backup_and_fresh_wal():
    psql("CREATE TABLE IF NOT EXISTS public.ticks (at timestamptz DEFAULT now())")
    psql("INSERT INTO public.ticks DEFAULT VALUES")
    archived()
    report = status()
    assert report["rc"] == 0, report["problems"]
    assert [r["tier"] for r in report["repos"]] == ["tier1", "tier3"]
    for repo in report["repos"]:
        assert repo["newest"]["full"] is not None
        assert repo["archive_age_seconds"] < 60
    # Tier 3 is the locked bucket, reached over HTTPS (the endpoint's certificate from the lab CA).
    assert "repo2-storage-port=9443" in DB.file(CONF).content_string
    assert DB.run("systemctl is-enabled pgharbor-timetravel-full.timer pgharbor-timetravel-diff.timer "
                  "pgharbor-timetravel-incr.timer").rc == 0


def test_time_travel_brings_deleted_rows_back(run_playbook):
    before = psql("SELECT count(*) FROM app.customers")
    moment = psql("SELECT clock_timestamp()")
    time.sleep(1)
    psql("DELETE FROM app.customers WHERE id <= 10")
    archived()
    common = {"time_travel_target": moment, "time_travel_database": "appdb", "time_travel_table": "app.customers"}

    preview = run_playbook("../../playbooks/time_travel.yml", "-l", "bs-db", extra_vars=common)
    assert preview.returncode == 0, preview.stdout
    shown = " ".join(preview.stdout.split())  # the callback folds long lines
    assert "app.customers by id: 10 rows only in the past (deleted since): 1 2 3 4 5 6 7 8 9 10" in shown, shown
    assert "from tier1" in shown
    assert DB.file(f"{PAST}/pgharbor-past.json").exists
    # The past copy listens on no network address.
    assert "listen_addresses = ''" in DB.file(f"{PAST}/postgresql.conf").content_string

    extract = run_playbook("../../playbooks/time_travel.yml", "-l", "bs-db", extra_vars={
        **common, "time_travel_action": "extract", "time_travel_where": "id <= 10"})
    assert extract.returncode == 0, extract.stdout
    assert "10 of 10 rows of app.customers copied into app.customers" in extract.stdout
    assert psql("SELECT count(*) FROM app.customers") == before

    # The past becomes live: rows deleted now come back with the swap, and go again with its undo.
    psql("DELETE FROM app.customers WHERE id > 490")
    swap = run_playbook("../../playbooks/time_travel.yml", "-l", "bs-db",
                        extra_vars={**common, "time_travel_action": "swap"})
    assert swap.returncode == 0, swap.stdout
    assert "appdb is now the past copy of" in " ".join(swap.stdout.split())
    assert psql("SELECT count(*) FROM app.customers") == before
    [kept] = psql("SELECT datname FROM pg_database WHERE datname LIKE 'appdb_before_restore_%'", "postgres").split()
    assert psql("SELECT count(*) FROM app.customers", kept) == str(int(before) - 10)
    again = run_playbook("../../playbooks/time_travel.yml", "-l", "bs-db",
                         extra_vars={**common, "time_travel_action": "swap"})
    assert again.returncode == 0 and "bs-db" in again.stdout and "changed=0" in again.stdout, again.stdout
    undo = run_playbook("../../playbooks/time_travel.yml", "-l", "bs-db", extra_vars={"time_travel_action": "undo"})
    assert undo.returncode == 0, undo.stdout
    assert psql("SELECT count(*) FROM app.customers") == str(int(before) - 10)
    psql("INSERT INTO app.customers SELECT i, 'customer ' || i FROM generate_series(491, 500) i")
    for db in psql("SELECT datname FROM pg_database WHERE datname LIKE 'appdb_%'", "postgres").split():
        psql(f'DROP DATABASE "{db}"', "postgres")

    discard = run_playbook("../../playbooks/time_travel.yml", "-l", "bs-db",
                           extra_vars={"time_travel_action": "discard"})
    assert discard.returncode == 0, discard.stdout
    assert not DB.file(PAST).exists


def test_verify_finds_a_damaged_file_though_pgbackrest_exits_0():
    assert DB.run("runuser -u postgres -- pgharbor-timetravel verify").rc == 0
    bundle = DB.run("find /var/lib/pgbackrest/backup -path '*/bundle/*' -type f | sort | head -1").stdout.strip()
    assert bundle
    DB.run_test(f"cp -p {bundle} /root/bundle.good")
    try:
        DB.run_test(f"printf 'XXXX' | dd of={bundle} bs=1 seek=200 conv=notrunc")
        plain = DB.run("runuser -u postgres -- pgbackrest --stanza=main --repo=1 verify")
        assert plain.rc == 0  # pgBackRest's own verdict: nothing wrong
        damaged = DB.run("runuser -u postgres -- pgharbor-timetravel verify --repo 1")
        assert damaged.rc == 1 and "checksum invalid" in damaged.stdout
    finally:
        DB.run_test(f"cp -p /root/bundle.good {bundle}")


def test_the_drill_takes_each_repository_in_turn_and_status_shows_its_rto():
    assert DB.run("systemctl is-enabled pgharbor-timetravel-drill.timer").rc == 0
    for _ in ("repo1", "repo2"):  # the rotation: each run takes the repository after the last drilled
        run = DB.run("systemctl start pgharbor-timetravel-drill.service")
        assert run.rc == 0, DB.run("journalctl -u pgharbor-timetravel-drill.service -n 20 --no-pager").stdout
    report = status()
    drills = {r["tier"]: r["drill"] for r in report["repos"]}
    assert set(drills) == {"tier1", "tier3"}
    assert all(d and d["result"] == "ok" and d["rto_seconds"] > 0 for d in drills.values()), drills
    assert not DB.file("/var/lib/postgresql/pgharbor-drill").exists
    # Each drill left its two markers in the maintenance database, and nothing in the application's.
    assert int(psql("SELECT count(*) FROM pgharbor_drill.marker", "postgres")) >= 4
    assert psql("SELECT to_regclass('pgharbor_drill.marker')") == ""


SNAPSHOTS = "/srv/pgharbor/store/bs-db/timetravel"


def pull_now() -> dict:
    BACKUP.run_test("systemctl start pgharbor-timetravel-pull.service")
    status = BACKUP.run("pgharbor-backup-server status --json")
    [report] = json.loads(status.stdout)
    return report["timetravel"]


def test_the_backup_server_pulls_snapshots_it_cannot_read():
    psql("INSERT INTO public.ticks DEFAULT VALUES")
    archived()
    first = pull_now()
    time.sleep(1)
    second = pull_now()
    assert second["healthy"], second["problems"]
    assert second["snapshots"] >= 2 and second["newest"] > first["newest"]
    newest = f"{SNAPSHOTS}/{second['newest']}"
    assert BACKUP.file(f"{newest}/backup/main/backup.info").exists
    # What did not change between the pulls is one file twice (--link-dest), not a second copy.
    previous = f"{SNAPSHOTS}/{first['newest']}"
    shared = BACKUP.run(f"cd {newest} && find backup -type f -links +1 | head -1").stdout.strip()
    assert shared, "no file of the newest snapshot is hard-linked to the one before"
    assert BACKUP.file(f"{newest}/{shared}").inode == BACKUP.file(f"{previous}/{shared}").inode
    # The copies stay encrypted: the backup server holds no passphrase.
    assert BACKUP.run(f"grep -rl 'cipher-pass' /etc/pgharbor /etc/pgbackrest {newest} 2>/dev/null").stdout == ""
    assert not BACKUP.file("/etc/pgbackrest/pgbackrest.conf").exists
    assert BACKUP.run(f"head -c 8 {newest}/backup/main/backup.info").stdout == "Salted__"
    # The DB host's login is read-only and takes the backup server's key from its address only.
    keys = DB.file("/etc/ssh/pgharbor-pull-authorized-keys").content_string
    assert 'restrict,from="' in keys and 'command="/usr/bin/rrsync -ro /var/lib/pgbackrest"' in keys


def test_the_db_host_can_neither_reach_nor_delete_the_pulled_snapshots():
    with held_still("pgharbor-timetravel-pull"):  # a pull under way would change them
        tried_to_reach_and_delete_the_snapshots()


def tried_to_reach_and_delete_the_snapshots() -> None:
    before = BACKUP.run(f"find {SNAPSHOTS} | sort").stdout
    assert before
    ssh = ("ssh -i /etc/pgharbor/tier2/id -o UserKnownHostsFile=/etc/pgharbor/tier2/known_hosts "
           "-o StrictHostKeyChecking=yes -o BatchMode=yes")
    for args in ("pgharbor-ship@bs-backup:../../store/bs-db/timetravel/ /tmp/stolen",
                 "-r --delete /tmp/empty/ pgharbor-ship@bs-backup:../../store/bs-db/timetravel/"):
        DB.run("mkdir -p /tmp/empty && chown postgres /tmp/empty")
        attempt = DB.run(f"runuser -u postgres -- rsync -r -e {shlex.quote(ssh)} {args}")
        assert attempt.rc != 0
    assert not DB.file("/tmp/stolen").exists
    # No key on the DB host other than its shipping key reaches the backup server.
    assert DB.run("grep -rl 'PRIVATE KEY' /etc/pgharbor /var/lib/postgresql /root 2>/dev/null").stdout.split() == \
        ["/etc/pgharbor/tier2/id"]
    assert BACKUP.run(f"find {SNAPSHOTS} | sort").stdout == before


def test_a_commit_reaches_every_tier_and_restores_from_each(run_playbook):
    """The RPO measured: one row committed (no forced segment switch: archive_timeout closes
    the segment), timed until it is archived to repo1 and repo2 (archive-push returns once both
    have it) and until a pull has it on the backup server; then a restore from each repository
    holds it. The figures go to reports/rpo-molecule.json (not asserted: speed is measured)."""
    psql("CREATE TABLE IF NOT EXISTS public.rpo (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
    begin = time.monotonic()
    segment = psql("INSERT INTO public.rpo (id) SELECT coalesce(max(id), 0) + 1 FROM public.rpo; "
                   "SELECT pg_walfile_name(pg_current_wal_lsn())")
    rows = psql("SELECT count(*) FROM public.rpo")
    while psql(f"SELECT last_archived_wal >= '{segment}' FROM pg_stat_archiver", "postgres") != "t":
        assert time.monotonic() - begin < 300, psql("SELECT * FROM pg_stat_archiver", "postgres")
        time.sleep(1)
    archived = time.monotonic() - begin
    pulled_at = time.monotonic()
    newest = pull_now()["newest"]
    pull_seconds = time.monotonic() - pulled_at
    assert BACKUP.run(f"find {SNAPSHOTS}/{newest}/archive -name '{segment}-*'").stdout.strip()

    for repo in (1, 2):
        shown = run_playbook("../../playbooks/time_travel.yml", "-l", "bs-db", extra_vars={
            "time_travel_repo": repo, "time_travel_database": "appdb"})
        assert shown.returncode == 0, shown.stdout
        assert f"public.rpo: {rows} rows then, {rows} now" in " ".join(shown.stdout.split()), shown.stdout
        dropped = run_playbook("../../playbooks/time_travel.yml", "-l", "bs-db",
                               extra_vars={"time_travel_action": "discard"})
        assert dropped.returncode == 0, dropped.stdout
    report = Path(__file__).resolve().parents[3] / "reports" / "rpo-molecule.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps({
        "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "tier1_and_tier3_seconds": round(archived, 1),
        "tier2_pull_seconds": round(pull_seconds, 1),
        "tier2_at_most_seconds": round(archived + 300 + pull_seconds, 1),  # the pull timer: every 5 min
    }, indent=2) + "\n")
