"""The time-travel layer against real parts: PostgreSQL 15 archiving through
Debian's pgBackRest into repo1 on disk and repo2 in an S3 bucket over
HTTPS (moto behind stunnel), and past copies restored beside the live
server, paused at their target."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import os
import random
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pgserver import free_port
from sshserver import keygen, start_sshd
from tcpproxy import TcpProxy
from timetravel import PASSPHRASE, STANZA, render_config, start_archiving

from pgharbor.cli import pgharbor_timetravel
from pgharbor.errors import PgharborError
from pgharbor.pg import session
from pgharbor.pg.swap import swap, undo
from pgharbor.tiers.pull import PullError, prune, pull, snapshots
from pgharbor.tiers.retention import Policy
from pgharbor.tiers.ssh import SshTarget
from pgharbor.timetravel.drill import check_markers, drill, log_drill, write_markers
from pgharbor.timetravel.engine import Pgbackrest
from pgharbor.timetravel.extract import ExtractError, extract
from pgharbor.timetravel.health import RunLog, archiver_state, health
from pgharbor.timetravel.pastcopy import PastCopy, PastCopyError, Target, restore_past
from pgharbor.timetravel.preview import row_diff, table_counts
from pgharbor.timetravel.swap import UNDO_WITH, load_past
from pgharbor.timetravel.verify import verify
from pgharbor.timetravel.window import WindowError, repo_states

_names = itertools.count()
# The host name the settings give the status gauges (the role writes inventory_hostname).
HOST = "db-under-test"


@pytest.fixture(scope="module")
def archiving(s3_server):
    bucket = s3_server.bucket("timetravel-tests", object_lock=True)
    s3_server.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    arch = start_archiving(s3_server, bucket)
    try:
        with arch.connect() as conn:
            conn.execute("CREATE DATABASE app")
        with arch.connect("app") as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL, "
                         "added timestamptz NOT NULL DEFAULT clock_timestamp())")
            conn.execute("CREATE TABLE notes (body text)")
            conn.execute("INSERT INTO orders (id, item) SELECT g, 'item ' || g FROM generate_series(1, 100) g")
        for repo in (1, 2):
            arch.engine.run("backup", f"--repo={repo}", "--type=full")
        yield arch
    finally:
        arch.remove()


@pytest.fixture
def past(request):
    """Restores a past copy of a server (the module's, unless another is given); each is dropped
    afterwards whatever happened."""
    made: list[PastCopy] = []

    def restore(target: Target, repo: int | None = None, of=None) -> PastCopy:
        arch = of or request.getfixturevalue("archiving")
        datadir = arch.server.basedir / f"past{next(_names)}"
        copy, _ = restore_past(arch.engine, repo_states(arch.engine), target, datadir, free_port(), repo,
                               arch.engine.prefix)
        made.append(copy)
        return copy
    yield restore
    for copy in made:
        if copy.datadir.exists():
            copy.drop()


def orders(conninfo: str) -> set[int]:
    with session.connect(conninfo) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM orders")}


def commit_order(archiving, order_id: int) -> dt.datetime:
    """Insert one order and return its commit's time, as the server's clock had it."""
    with archiving.connect("app") as conn:
        conn.execute("INSERT INTO orders (id, item) VALUES (%s, 'one')", (order_id,))
        return conn.execute("SELECT clock_timestamp()").fetchone()[0]


@pytest.mark.parametrize("repo", [1, 2], ids=["tier1-disk", "tier3-s3"])
def test_a_restore_between_two_commits_a_second_apart_has_the_first_and_not_the_second(archiving, past, repo):
    first = 1000 + repo * 10
    after_first = commit_order(archiving, first)
    time.sleep(1)
    commit_order(archiving, first + 1)
    archiving.archived()

    copy = past(Target("time", time=after_first + dt.timedelta(milliseconds=500)), repo)

    ids = orders(copy.conninfo("app"))
    assert first in ids and first + 1 not in ids
    assert copy.state() == "paused"
    # The live server goes on as it was.
    assert {first, first + 1} <= orders(archiving.server.conninfo("app"))


def test_a_restore_point_brings_back_what_was_deleted_after_it(archiving, past):
    with archiving.connect("app") as conn:
        conn.execute("SELECT pg_create_restore_point('before-cleanup')")
        conn.execute("DELETE FROM orders WHERE id BETWEEN 10 AND 19")
    archiving.archived()

    copy = past(Target.parse(name="before-cleanup"))

    assert set(range(10, 20)) <= orders(copy.conninfo("app"))
    assert not set(range(10, 20)) & orders(archiving.server.conninfo("app"))


def test_latest_has_every_archived_commit(archiving, past):
    commit_order(archiving, 2000)
    archiving.archived()

    copy = past(Target.parse("latest"))

    assert 2000 in orders(copy.conninfo("app"))
    assert copy.state() == "promoted"


def test_the_window_runs_from_the_oldest_backup_to_the_newest_archived_wal(archiving):
    before = dt.datetime.now(dt.timezone.utc)
    commit_order(archiving, 3000)
    archiving.archived()
    states = repo_states(archiving.engine)
    assert [s.tier for s in states] == ["tier1", "tier3"]
    for state in states:
        assert state.status == "ok"
        assert state.newest_of("full") is not None
        assert state.oldest == state.backups[0].stop
        # The segment just switched reached this repository a moment ago: the newest
        # restorable time is now, to the second.
        assert state.newest >= before - dt.timedelta(seconds=1)
        assert state.wal_files >= 2


@pytest.mark.parametrize("offset", [dt.timedelta(hours=-1), dt.timedelta(hours=1)], ids=["before", "after"])
def test_a_target_outside_the_window_is_refused_naming_every_window(archiving, past, offset):
    states = repo_states(archiving.engine)
    edge = states[0].oldest if offset < dt.timedelta(0) else states[0].newest
    with pytest.raises(WindowError) as refused:
        past(Target("time", time=edge + offset))
    message = str(refused.value)
    for state in states:
        assert f"{state.oldest:%Y-%m-%d %H:%M:%S}" in message and state.tier in message
    assert "time_travel_target" in message


def test_a_time_without_a_zone_is_refused():
    with pytest.raises(PastCopyError, match="no time zone"):
        Target.parse("2026-12-04 10:03:00")
    with pytest.raises(PastCopyError, match="is not a time"):
        Target.parse("yesterday at ten")
    assert Target.parse("2026-12-04 10:03:00+01:00").time == dt.datetime(2026, 12, 4, 9, 3, tzinfo=dt.timezone.utc)


def test_preview_counts_and_the_deleted_rows_come_back_by_extract(archiving, past):
    archiving.archived()
    moment = archiving.server_now()
    time.sleep(1)
    with archiving.connect("app") as conn:
        conn.execute("DELETE FROM orders WHERE id BETWEEN 50 AND 54")
        conn.execute("UPDATE orders SET item = 'changed' WHERE id = 60")
        conn.execute("INSERT INTO notes VALUES ('a note')")
    archiving.archived()

    copy = past(Target("time", time=moment))
    with session.connect(copy.conninfo("app")) as then, session.connect(archiving.server.conninfo("app")) as now:
        counts = {c.table: (c.past, c.live) for c in table_counts(then, now)}
        assert counts["public.notes"][1] == counts["public.notes"][0] + 1
        assert counts["public.orders"][0] - counts["public.orders"][1] == 5
        diff = row_diff(then, now, "orders")
        assert diff.key == ["id"]
        assert diff.only_past == sorted(str(i) for i in range(50, 55))
        assert diff.changed == ["60"] and diff.only_live == []

        with pytest.raises(ExtractError, match="no primary key"):
            extract(then, now, "public.notes")
        result = extract(then, now, "orders", where="id BETWEEN 40 AND 60")
        assert (result.read, result.inserted, result.skipped) == (21, 5, 16)
        assert set(range(50, 55)) <= orders(archiving.server.conninfo("app"))
        # The changed row is not overwritten: it was there, so it is left.
        assert now.execute("SELECT item FROM orders WHERE id = 60").fetchone()[0] == "changed"

        side = extract(then, now, "orders", mode="side", where="id = 60")
        assert side.into == "pgharbor_past.public_orders" and side.inserted == 1
        assert now.execute("SELECT item FROM pgharbor_past.public_orders").fetchone()[0] == "item 60"
        with pytest.raises(ExtractError, match="exists already"):
            extract(then, now, "orders", mode="side")
        now.execute("DROP SCHEMA pgharbor_past CASCADE")


def test_verify_finds_a_damaged_backup_file_though_pgbackrest_exits_0(archiving):
    assert verify(archiving.engine, 1).ok
    bundle = sorted((Path(archiving.home) / "repo1" / "backup").rglob("bundle/*"))[0]
    original = bundle.read_bytes()
    try:
        bundle.write_bytes(original[:1000] + bytes(b ^ 0xFF for b in original[1000:1004]) + original[1004:])
        report = verify(archiving.engine, 1)
        assert not report.ok
        assert "checksum invalid" in report.text() and report.problems
    finally:
        bundle.write_bytes(original)
    assert verify(archiving.engine, 1).ok


def test_an_existing_directory_is_never_restored_over(archiving, past):
    datadir = archiving.server.basedir / "occupied"
    datadir.mkdir()
    with pytest.raises(PgharborError, match="exists already"):
        restore_past(archiving.engine, repo_states(archiving.engine), Target.parse("latest"), datadir, free_port(),
                     prefix=archiving.engine.prefix)
    assert datadir.exists()


@pytest.fixture
def run_command(archiving, monkeypatch, capsys, tmp_path):
    """pgharbor-timetravel as the timers run it, with pgbackrest run as the postgres user (a
    wrapper first on PATH: the command calls pgbackrest by name)."""
    wrapper = tmp_path / "bin" / "pgbackrest"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\nexec {' '.join(archiving.engine.prefix)} /usr/bin/pgbackrest \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}:{os.environ['PATH']}")
    settings = tmp_path / "timetravel.json"
    settings.write_text(json.dumps({
        "stanza": STANZA, "pgbackrest_config": archiving.engine.config, "repos": [1, 2],
        "run_log": str(tmp_path / "runs.json"), "max_archive_age_minutes": 5,
        "db": archiving.server.conninfo(), "host": HOST}))

    def run(*args: str) -> tuple[int, str]:
        code = pgharbor_timetravel.main(["--config", str(settings), *args])
        out = capsys.readouterr()
        return code, out.out + out.err
    return run


def test_the_command_backs_up_every_repository_and_reports_their_health(archiving, run_command, tmp_path):
    code, said = run_command("backup", "--type", "incr")
    assert code == 0, said
    assert "incr backup to repo1: ok" in said and "incr backup to repo2: ok" in said

    commit_order(archiving, 4000)
    archiving.archived()
    code, said = run_command("status", "--json")
    assert code == 0, said
    report = json.loads(said)
    assert report["healthy"] and [r["tier"] for r in report["repos"]] == ["tier1", "tier3"]
    for repo in report["repos"]:
        assert repo["newest"]["incr"] is not None and repo["last_runs"]["incr"]["result"] == "ok"
        assert 0 <= repo["archive_age_seconds"] < 60
    assert report["archiver"]["archived_count"] > 0
    # the same report as gauges for node_exporter, labelled with the host the settings name
    gauges_file = tmp_path / "pgharbor_timetravel.prom"
    assert run_command("status", "--prometheus", str(gauges_file))[0] == 0
    gauges = gauges_file.read_text()
    for tier in ("tier1", "tier3"):
        assert f'pgharbor_timetravel_tier_healthy{{host="{HOST}",tier="{tier}"}} 1\n' in gauges
    assert f'pgharbor_timetravel_archiver_failing{{host="{HOST}"}} 0\n' in gauges

    assert run_command("verify")[0] == 0


def test_a_failed_backup_fails_the_run_and_the_status_names_it(archiving, run_command):
    # A repository path pgBackRest cannot write: that run fails, the next repository still gets its backup.
    archiving.write_config(pg_timetravel_repo_path="/proc/no-such-repository")
    try:
        code, said = run_command("backup", "--type", "diff")
        assert code == 1
        assert "diff backup to repo1: FAILED" in said and "diff backup to repo2: ok" in said
    finally:
        archiving.write_config()
    code, said = run_command("status")
    assert code == 1
    assert "repo1 (tier1): the last diff backup failed" in said
    # The next good run clears it.
    assert run_command("backup", "--type", "diff")[0] == 0
    assert run_command("status")[0] == 0


@pytest.fixture
def behind_a_proxy(s3_server):
    """A server of its own whose way to the bucket goes through a relay the test can cut."""
    bucket = s3_server.bucket(f"timetravel-outage-{next(_names)}")
    with TcpProxy(s3_server.tls_port) as proxy:
        arch = start_archiving(s3_server, bucket, s3_port=proxy.port)
        try:
            with arch.connect() as conn:
                conn.execute("CREATE TABLE writes (n int PRIMARY KEY)")
            for repo in (1, 2):
                arch.engine.run("backup", f"--repo={repo}", "--type=full")
            yield arch, proxy
        finally:
            arch.remove()


def test_s3_down_while_writes_go_on_loses_nothing_and_archiving_catches_up(behind_a_proxy, past):
    arch, proxy = behind_a_proxy
    proxy.cut()
    with arch.connect() as conn:
        for n in range(5):
            conn.execute("INSERT INTO writes VALUES (%s)", (n,))
            last = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        # The writes went on; the segments the bucket has not taken wait in pg_wal.
        assert conn.execute("SELECT coalesce(last_archived_wal, '') < %s FROM pg_stat_archiver",
                            (last,)).fetchone()[0]
        assert last in {r[0] for r in conn.execute("SELECT name FROM pg_ls_waldir()")}
    # What status reports of it: the segments waiting, pg_wal's size, the room left for it.
    waiting = archiver_state(arch.server.conninfo())
    assert waiting["ready_segments"] >= 1 and waiting["wal_bytes"] >= waiting["ready_segments"] << 24
    assert waiting["wal_free_bytes"] > 0

    proxy.restore()
    arch.archived(timeout=300)
    assert archiver_state(arch.server.conninfo())["ready_segments"] == 0

    # Every write reached the bucket: a copy from repo2 alone has all of them.
    copy = past(Target.parse("latest"), 2, of=arch)
    with session.connect(copy.conninfo()) as conn:
        assert [r[0] for r in conn.execute("SELECT n FROM writes ORDER BY n")] == [0, 1, 2, 3, 4]


def test_an_idle_server_reports_no_unarchived_wal_until_it_writes():
    """The rule that keeps an idle database from raising the archiving alarm, against a real server: once
    its last segment is archived and nothing is written, nothing waits; the next write does."""
    arch = start_archiving(settings={"autovacuum": "off"})  # nothing but the test writes
    try:
        with arch.connect() as conn:
            conn.execute("CREATE TABLE idle (n int)")
        arch.archived()
        assert archiver_state(arch.server.conninfo())["unarchived_wal"] is False
        with arch.connect() as conn:
            conn.execute("INSERT INTO idle VALUES (1)")
        assert archiver_state(arch.server.conninfo())["unarchived_wal"] is True
        arch.archived()
        assert archiver_state(arch.server.conninfo())["unarchived_wal"] is False
    finally:
        arch.remove()


def test_a_failing_archiver_is_a_problem_until_it_succeeds_again():
    now = dt.datetime.now(dt.timezone.utc)
    failing = {"last_failed_time": now, "last_archived_time": now - dt.timedelta(minutes=3), "failed_count": 7,
               "last_failed_wal": "000000010000000000000009"}
    report = health([], {}, dt.timedelta(minutes=5), now, failing)
    assert not report["healthy"]
    assert report["problems"] == ["archive_command is failing: 7 failures, the last for WAL 000000010000000000000009 "
                                  f"at {now}; WAL is kept in pg_wal until it succeeds: see the pgBackRest log "
                                  "(pg_timetravel_log_path)"]
    recovered = {**failing, "last_archived_time": now + dt.timedelta(seconds=1)}
    assert health([], {}, dt.timedelta(minutes=5), now, recovered)["healthy"]


def test_a_backup_killed_half_way_leaves_the_repository_sound_and_the_next_one_runs(archiving):
    labels = {b.label for s in repo_states(archiving.engine) for b in s.backups}
    sets = archiving.home / "repo1" / "backup" / "main"
    running = subprocess.Popen(archiving.engine.argv("backup", "--repo=1", "--type=full"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # Killed as soon as its backup set appears in the repository: half-way through copying.
    deadline = time.monotonic() + 30
    while not {p.name for p in sets.iterdir() if p.is_dir()} - labels - {"backup.history"}:
        assert running.poll() is None and time.monotonic() < deadline, "the backup never started"
        time.sleep(0.01)
    os.killpg(running.pid, signal.SIGKILL)  # runuser, pgBackRest and its workers, as a power cut would
    running.wait(timeout=30)
    assert running.returncode != 0
    # Killed half-way: no new backup counts, the repository verifies, and the next backup runs.
    assert {b.label for s in repo_states(archiving.engine) for b in s.backups} == labels
    assert verify(archiving.engine, 1).ok
    archiving.engine.run("backup", "--repo=1", "--type=full")
    after = repo_states(archiving.engine)[0]
    assert after.newest_of("full").label not in labels


# Tier 2: the backup server pulls snapshots of repo1 through a read-only login on the DB host.

@pytest.fixture
def pull_source(archiving, sshd, tmp_path):
    """The DB host's pull login as pg_timetravel writes it: the backup server's key, read-only on repo1,
    from its address only."""
    identity = tmp_path / "pull_ed25519"
    sshd.authorize(keygen(identity, "backup server pull"),
                   f'restrict,from="127.0.0.1",command="rrsync -ro {archiving.home / "repo1"}"')
    return SshTarget(host="127.0.0.1", port=sshd.port, user=sshd.user, identity=str(identity),
                     known_hosts=str(sshd.known_hosts(tmp_path / "known_hosts")), retries=0)


def test_pulled_snapshots_share_unchanged_files_and_restore_to_a_point_in_time(archiving, pull_source, tmp_path,
                                                                              past):
    root = tmp_path / "timetravel"
    now = dt.datetime.now(dt.timezone.utc)
    first = pull(pull_source, root, now)
    after = commit_order(archiving, 5000)
    time.sleep(1)
    commit_order(archiving, 5001)
    archiving.archived()
    second = pull(pull_source, root, now + dt.timedelta(seconds=2))

    older, newer = (root / first["snapshot"], root / second["snapshot"])
    assert [s.name for s in snapshots(root)] == [older.name, newer.name]
    backup_files = [p for p in older.rglob("*") if p.is_file() and "/backup/" in str(p) and ".info" not in p.name]
    assert backup_files
    for path in backup_files:  # written once by pgBackRest: one inode in both snapshots
        assert path.stat().st_ino == (newer / path.relative_to(older)).stat().st_ino
    assert second["transferred_bytes"] < sum(p.stat().st_size for p in newer.rglob("*") if p.is_file())

    # Restored from the snapshot (fetched to the DB host as the restore login does): exactly as of the target.
    fetched = archiving.home / "fetched-tier2"
    subprocess.run(["cp", "-a", str(newer), str(fetched)], check=True)
    subprocess.run(["chown", "-R", "postgres:postgres", str(fetched)], check=True)
    engine = Pgbackrest(str(archiving.home / "tier2.conf"), STANZA, archiving.engine.prefix)
    Path(engine.config).write_text(render_config(
        pg_timetravel_stanza=STANZA, pg_timetravel_cipher_passphrase=PASSPHRASE,
        pg_timetravel_data_directory=str(archiving.server.datadir), pg_timetravel_port=archiving.server.port,
        pg_timetravel_socket_directory=str(archiving.server.basedir), pg_timetravel_repo_path=str(fetched),
        pg_timetravel_spool_path=str(archiving.home / "spool"), pg_timetravel_log_path=str(archiving.home / "log")))
    subprocess.run(["chown", "postgres:postgres", engine.config], check=True)
    datadir = archiving.server.basedir / "past-tier2"
    copy, state = restore_past(engine, repo_states(engine), Target("time", time=after + dt.timedelta(milliseconds=500)),
                               datadir, free_port(), prefix=engine.prefix)
    try:
        ids = orders(copy.conninfo("app"))
        assert 5000 in ids and 5001 not in ids
    finally:
        copy.drop()


def test_a_pull_cut_off_leaves_no_snapshot_and_the_next_one_is_whole(archiving, pull_source, tmp_path, sshd):
    root = tmp_path / "timetravel"
    now = dt.datetime.now(dt.timezone.utc)
    sshd.stop()
    with pytest.raises(PullError, match="no snapshot was made"):
        pull(pull_source, root, now)
    assert snapshots(root) == [] and not list(root.glob(".*.partial"))
    restarted = start_sshd(tmp_path / "sshd-again")
    try:
        pull_source = dataclasses.replace(pull_source, port=restarted.port, known_hosts=str(
            restarted.known_hosts(tmp_path / "known_hosts2")))
        restarted.authorized_keys.write_text(sshd.authorized_keys.read_text())
        record = pull(pull_source, root, now + dt.timedelta(seconds=1))
        assert [s.name for s in snapshots(root)] == [record["snapshot"]]
        assert not list(root.glob(".*.partial"))
    finally:
        restarted.stop()


def test_the_pull_key_reads_only_and_only_from_the_backup_servers_address(archiving, sshd, pull_source, tmp_path):
    repo = archiving.home / "repo1"
    before = sorted(str(p.relative_to(repo)) for p in repo.rglob("*"))
    planted = tmp_path / "planted"
    planted.write_text("from a compromised backup server")
    push = subprocess.run(["rsync", "-e", shlex.join(pull_source.ssh_command()), str(planted),
                           f"{pull_source.user}@127.0.0.1:./"], capture_output=True, text=True)
    assert push.returncode != 0 and "sending to read-only server is not allowed" in push.stderr
    delete = subprocess.run(["rsync", "-r", "--delete", "-e", shlex.join(pull_source.ssh_command()),
                             f"{tmp_path / 'empty'}/", f"{pull_source.user}@127.0.0.1:./"], capture_output=True,
                            text=True)
    assert delete.returncode != 0
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*")) == before

    # The same key from another address: refused (sshd's from=).
    elsewhere = tmp_path / "elsewhere_ed25519"
    sshd.authorize(keygen(elsewhere, "pull key, wrong source"),
                   f'restrict,from="192.0.2.1",command="rrsync -ro {repo}"')
    with pytest.raises(PullError, match="refused the pull key"):
        pull(dataclasses.replace(pull_source, identity=str(elsewhere)), tmp_path / "nothing")


def test_snapshot_retention_keeps_one_per_bucket_and_always_the_newest(tmp_path):
    root = tmp_path / "timetravel"
    start = dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.timezone.utc)
    for minutes in range(0, 3 * 24 * 60, 30):
        (root / (start + dt.timedelta(minutes=minutes)).strftime("%Y%m%dT%H%M%SZ")).mkdir(parents=True)
    now = start + dt.timedelta(days=3)

    prune(root, Policy(hourly=6, daily=2), now)

    kept = [s.taken for s in snapshots(root)]
    assert kept[-1] == now - dt.timedelta(minutes=30)
    assert len(kept) == 7  # six hours, each its newest (the last day's newest among them), and one more day
    assert kept[0] == start + dt.timedelta(days=2) - dt.timedelta(minutes=30)


@pytest.mark.parametrize("repo", [1, 2], ids=["tier1-disk", "tier3-s3"])
def test_the_drill_restores_between_its_own_markers_checks_the_copy_and_leaves_nothing(archiving, repo, run_command,
                                                                                      tmp_path):
    directory = archiving.server.basedir / f"drill{next(_names)}"
    if repo == 2:  # a drill cut off before left its copy: the next one drops it first
        restore_past(archiving.engine, repo_states(archiving.engine), Target.parse("latest"), directory, free_port(),
                     1, archiving.engine.prefix)
    record = drill(archiving.engine, repo, archiving.server.conninfo(), directory, free_port(),
                   prefix=archiving.engine.prefix, pause=(0.3, 0.6))
    assert record.result == "ok", record.error
    assert record.tier == ("tier1" if repo == 1 else "tier3") and record.backup
    assert record.rto_seconds > 0 and record.markers >= 1
    assert not directory.exists()
    with archiving.connect() as conn:
        newest_two = [r[0] for r in conn.execute("SELECT written FROM pgharbor_drill.marker ORDER BY id DESC LIMIT 2")]
    target = dt.datetime.fromisoformat(record.target.replace(" UTC", "+00:00"))
    assert newest_two[1] < target < newest_two[0]  # between the drill's own two markers

    # Recorded as the command records it, status shows it with its RTO.
    log = RunLog(tmp_path / "runs.json")
    log_drill(log, record)
    code, said = run_command("status", "--json")
    [shown] = [r for r in json.loads(said)["repos"] if r["repo"] == repo]
    assert shown["drill"]["result"] == "ok" and shown["drill"]["rto_seconds"] == record.rto_seconds


def test_a_damaged_repository_fails_the_drill_and_status_names_it(archiving, run_command, tmp_path):
    bundle = sorted((Path(archiving.home) / "repo1" / "backup").rglob("bundle/*"))[0]
    original = bundle.read_bytes()
    directory = archiving.server.basedir / f"drill{next(_names)}"
    try:
        bundle.write_bytes(original[:1000] + bytes(b ^ 0xFF for b in original[1000:1004]) + original[1004:])
        record = drill(archiving.engine, 1, archiving.server.conninfo(), directory, free_port(),
                       prefix=archiving.engine.prefix, pause=(0.1, 0.2))
    finally:
        bundle.write_bytes(original)
    assert record.result == "failed" and "verify found damage" in record.error and "checksum invalid" in record.error
    assert record.rto_seconds is None and not directory.exists()
    log_drill(RunLog(tmp_path / "runs.json"), record)
    code, said = run_command("status")
    assert code == 1
    assert "repo1 (tier1): the last time-travel drill failed" in said and "checksum invalid" in said


def test_the_marker_check_fails_on_a_missing_a_later_or_an_unexpected_marker(archiving):
    """What the drill's check says of a copy that is wrong, tried on the live server itself, which
    holds every marker."""
    conninfo = archiving.server.conninfo()
    first, target, second = write_markers(conninfo, (0, 0), random.Random(0))
    with archiving.connect() as conn:
        held = {r[0] for r in conn.execute("SELECT id FROM pgharbor_drill.marker")}
    with pytest.raises(PgharborError, match=f"lacks marker {second + 1}, committed before the target"):
        check_markers(conninfo, second + 1, second + 2, held)
    with pytest.raises(PgharborError, match=f"holds marker {second}, committed after the target"):
        check_markers(conninfo, first, second, held)
    with pytest.raises(PgharborError, match=rf"holds markers \[{second}\] differently"):
        check_markers(conninfo, first, second + 1, held - {second})
    assert check_markers(conninfo, first, second + 1, held) == len(held)


def test_the_past_database_swaps_in_the_live_one_is_kept_and_undo_puts_it_back(archiving, past, tmp_path):
    admin = archiving.server.conninfo()
    with archiving.connect() as conn:
        conn.execute("CREATE DATABASE swapdb")
    try:
        with archiving.connect("swapdb") as conn:
            conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
            conn.execute("INSERT INTO t SELECT generate_series(1, 20)")
        moment = archiving.server_now()
        time.sleep(1.1)
        with archiving.connect("swapdb") as conn:
            conn.execute("DELETE FROM t WHERE id <= 5")
        archiving.archived()
        copy = past(Target("time", moment))
        name, loaded, _ = load_past(copy, admin, "swapdb")
        assert (name, loaded) == ("swapdb_past", True)
        assert load_past(copy, admin, "swapdb")[1] is False  # a complete load is kept

        state = tmp_path / "swap.json"
        done = swap(admin, "swapdb", name, state, undo_with=UNDO_WITH)
        assert done["changed"] and done["previous"].startswith("swapdb_before_restore_")
        assert orders_of(archiving, "swapdb") == set(range(1, 21))  # the past is live
        assert orders_of(archiving, done["previous"]) == set(range(6, 21))  # what was live is kept
        with pytest.raises(PgharborError, match="undo it first \\(time_travel.yml with -e time_travel_action=undo\\)"):
            swap(admin, "swapdb", "other", state, undo_with=UNDO_WITH)

        undone = undo(admin, state)
        assert orders_of(archiving, "swapdb") == set(range(6, 21))
        assert orders_of(archiving, undone["kept"]) == set(range(1, 21))
        assert not state.exists()
    finally:
        with archiving.connect() as conn:
            for (db,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'swapdb%'").fetchall():
                conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')


def test_a_failed_load_leaves_no_database_and_a_missing_live_one_is_named(archiving, past):
    admin = archiving.server.conninfo()
    copy = past(Target.parse("latest"))
    with pytest.raises(PgharborError, match="database nosuchdb does not exist on the live server"):
        load_past(copy, admin, "nosuchdb")
    with archiving.connect() as conn:
        conn.execute("CREATE DATABASE onlylive")  # live has it, the past copy does not: pg_dump fails
    try:
        with pytest.raises(PgharborError, match="loading onlylive from the past copy of .* failed \\(dropped\\)"):
            load_past(copy, admin, "onlylive")
        with archiving.connect() as conn:
            assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'onlylive_past'").fetchone()[0] == 0
    finally:
        with archiving.connect() as conn:
            conn.execute("DROP DATABASE onlylive")


def orders_of(archiving, database: str) -> set[int]:
    with archiving.connect(database) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM t")}
