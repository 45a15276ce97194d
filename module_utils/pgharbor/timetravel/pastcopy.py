"""A past copy: the cluster as it was at a target, restored by pgBackRest
into a new data directory beside the live one, started on a Unix socket of
its own, and paused there.

The live cluster and the application are not touched: the copy listens on no
network address, takes its WAL from the repository (restore_command) and
never pushes any back (--archive-mode=off), and recovery pauses at the
target, so it can be looked at read-only until someone decides what to do
with it: take rows from it (extract.py), swap it in, or drop it."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ..errors import PgharborError
from ..pg.sections import pg_bindir
from .engine import Pgbackrest
from .window import RepoState, check_target

# pg_controldata's names for the settings a hot standby must have at least as high as the
# server whose WAL it replays, and their postgresql.conf names.
HOT_STANDBY_MINIMUMS = {
    "max_connections setting": "max_connections",
    "max_worker_processes setting": "max_worker_processes",
    "max_wal_senders setting": "max_wal_senders",
    "max_prepared_xacts setting": "max_prepared_transactions",
    "max_locks_per_xact setting": "max_locks_per_transaction",
}
# What was restored, kept in the copy's data directory: a later run finds the copy by it.
RECORD = "pgharbor-past.json"
# Room for the restore beyond the database's own size: WAL replayed, the server's own files.
DISK_MARGIN = 1.1
DISK_SLACK_BYTES = 256 << 20


class PastCopyError(PgharborError, RuntimeError):
    pass


@dataclass(frozen=True)
class Target:
    """Where recovery stops: a time (UTC unless it says otherwise), a restore point's name, or the
    end of the archived WAL (latest)."""
    kind: str  # time, name or latest
    time: dt.datetime | None = None
    name: str = ""

    @classmethod
    def parse(cls, time_text: str | None = None, name: str | None = None) -> Target:
        if name and time_text:
            raise PastCopyError("give a time or a restore point's name as the target, not both")
        if name:
            return cls("name", name=name)
        if not time_text or time_text == "latest":
            return cls("latest")
        try:
            when = dt.datetime.fromisoformat(time_text.replace(" UTC", "+00:00"))
        except ValueError:
            raise PastCopyError(f"target time {time_text!r} is not a time: write it as 2026-12-04 10:03:00+00:00 "
                                "(ISO 8601, with its time zone), or latest") from None
        if when.tzinfo is None:
            raise PastCopyError(f"target time {time_text!r} has no time zone: add one, for example +00:00 for UTC")
        return cls("time", time=when.astimezone(dt.timezone.utc))

    def options(self) -> list[str]:
        if self.kind == "time":
            return ["--type=time", f"--target={self.time:%Y-%m-%d %H:%M:%S.%f+00}", "--target-action=pause"]
        if self.kind == "name":
            return ["--type=name", f"--target={self.name}", "--target-action=pause"]
        return ["--type=default"]

    def text(self) -> str:
        if self.kind == "time":
            return f"{self.time:%Y-%m-%d %H:%M:%S.%f} UTC"
        return f"restore point {self.name!r}" if self.kind == "name" else "the newest archived WAL (latest)"


@dataclass
class PastCopy:
    datadir: Path
    port: int
    prefix: tuple[str, ...] = ()  # as for Pgbackrest: the tests run the server as postgres this way
    bindir: Path = field(default_factory=pg_bindir)

    @property
    def socket_dir(self) -> Path:
        return self.datadir

    @property
    def logfile(self) -> Path:
        return self.datadir / "pgharbor-past.log"

    def conninfo(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return psycopg.conninfo.make_conninfo(host=str(self.socket_dir), port=self.port, dbname=dbname, user=user)

    def _run(self, *argv: str) -> str:
        result = subprocess.run([*self.prefix, *argv], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise PastCopyError(f"{Path(argv[0]).name} failed (exit {result.returncode}): {result.stderr.strip()}"
                                + self._log_tail())
        return result.stdout

    def _log_tail(self) -> str:
        try:
            lines = self.logfile.read_text().splitlines()
        except OSError:
            return ""
        return "; the past copy's log ends: " + " / ".join(lines[-6:])

    def configure(self) -> None:
        """The copy's own postgresql.conf and pg_hba.conf, replacing what the backup held: a
        Unix socket only, local peer logins only, and the hot standby minimums its WAL needs."""
        control = self._run(str(self.bindir / "pg_controldata"), str(self.datadir))
        values = dict(line.split(":", 1) for line in control.splitlines() if ":" in line)
        lines = [
            "# The past copy written by pgharbor (pg_timetravel): no network, no archiving.",
            f"port = {self.port}",
            "listen_addresses = ''",
            f"unix_socket_directories = '{self.socket_dir}'",
            f"hba_file = '{self.datadir / 'pg_hba.conf'}'",
            f"ident_file = '{self.datadir / 'pg_ident.conf'}'",
            "hot_standby = on",
            "archive_mode = off",
            "ssl = off",
            *(f"{name} = {values[key].strip()}" for key, name in HOT_STANDBY_MINIMUMS.items() if key in values),
        ]
        self._write("postgresql.conf", "\n".join(lines) + "\n")
        # Only the OS user that runs pgharbor (and the server's own) may log in, as postgres.
        self._write("pg_hba.conf", "# the past copy: local logins by pgharbor's OS user only\n"
                                   "local all postgres peer map=pgharbor\n")
        users = sorted({getpass.getuser(), "postgres"})
        self._write("pg_ident.conf", "".join(f"pgharbor {user} postgres\n" for user in users))

    def _write(self, name: str, text: str) -> None:
        # Through the prefix, so the file belongs to the server's user in the tests too.
        subprocess.run([*self.prefix, "tee", str(self.datadir / name)], input=text, text=True,
                       capture_output=True, check=True)

    def start(self, timeout: float = 600) -> str:
        """Start the copy and wait until recovery has reached its target (paused) or, for latest,
        ended. Returns the state: paused or promoted."""
        self._run(str(self.bindir / "pg_ctl"), "start", "-D", str(self.datadir), "-l", str(self.logfile), "-t", "60")
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            if state in ("paused", "promoted"):
                return state
            if state == "stopped":
                tail = self._log_tail()
                if "before configured recovery target was reached" in tail:
                    raise PastCopyError(
                        "the archived WAL ends before the target: no commit after it has been archived yet (a "
                        "time target stops at the first commit after it), or the restore point is older than the "
                        "backup restored. Choose an earlier target, or latest" + tail)
                raise PastCopyError("the past copy stopped during recovery" + tail)
            if time.monotonic() > deadline:
                raise PastCopyError(f"the past copy did not reach its target within {timeout:.0f} s"
                                    + self._log_tail())
            time.sleep(0.5)

    def state(self) -> str:
        """stopped, starting, replaying, paused (recovery at its target) or promoted."""
        if not (self.datadir / "postmaster.pid").exists():
            return "stopped"
        try:
            with psycopg.connect(self.conninfo(), connect_timeout=5) as conn:
                in_recovery, pause = conn.execute(
                    "SELECT pg_is_in_recovery(), CASE WHEN pg_is_in_recovery() "
                    "THEN pg_get_wal_replay_pause_state() END").fetchone()
        except psycopg.OperationalError as exc:
            if not (self.datadir / "postmaster.pid").exists():
                return "stopped"
            if any(s in str(exc) for s in ("starting up", "not yet accepting", "No such file", "Connection refused")):
                return "starting"
            raise PastCopyError(f"cannot log in to the past copy: {exc}") from None
        if not in_recovery:
            return "promoted"
        return "paused" if pause == "paused" else "replaying"

    def reached(self) -> dt.datetime | None:
        """The commit time recovery stopped at."""
        with psycopg.connect(self.conninfo(), connect_timeout=5) as conn:
            return conn.execute("SELECT pg_last_xact_replay_timestamp()").fetchone()[0]

    def record(self) -> dict:
        try:
            return json.loads((self.datadir / RECORD).read_text())
        except (OSError, ValueError):
            return {}

    def promote(self) -> None:
        """End recovery where it paused: the copy becomes writable (a drill's pg_amcheck installs its
        extension). It still never archives, and the live cluster is not touched."""
        if self.state() == "promoted":
            return
        with psycopg.connect(self.conninfo(), autocommit=True, connect_timeout=10) as conn:
            if not conn.execute("SELECT pg_promote(true, 60)").fetchone()[0]:
                raise PastCopyError("the past copy did not finish its promotion within 60 s" + self._log_tail())

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "stop", "-D", str(self.datadir), "-m", "fast", "-w")

    def drop(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir)


def existing(datadir: Path, prefix: tuple[str, ...] = ()) -> PastCopy | None:
    """The past copy a previous run restored into datadir, or None."""
    try:
        record = json.loads((datadir / RECORD).read_text())
    except FileNotFoundError:
        if datadir.exists():
            raise PastCopyError(f"{datadir} exists but holds no past copy pgharbor made: choose another directory "
                                "(time_travel_directory), or remove it once you are sure it is not needed") from None
        return None
    except (OSError, ValueError) as exc:
        raise PastCopyError(f"cannot read {datadir / RECORD}: {exc}") from None
    return PastCopy(datadir, int(record["port"]), prefix)


def restore_options(engine: Pgbackrest, repo: int, datadir: Path) -> list[str]:
    """pgBackRest restore's options for a cluster beside the live one: its own directory, no
    archiving, and WAL fetched synchronously: asynchronous archive-get would share the live
    server's spool and its archive lock with archive-push, and both would wait on it."""
    restore_command = " ".join([engine.binary, *map(shlex.quote, engine.global_options()), f"--repo={repo}",
                                f"--pg1-path={datadir}", "--no-archive-async", "archive-get", '%f "%p"'])
    return [f"--repo={repo}", f"--pg1-path={datadir}", "--archive-mode=off",
            f"--recovery-option=restore_command={restore_command}"]


def check_disk(parent: Path, need: int) -> None:
    free = shutil.disk_usage(parent).free
    want = int(need * DISK_MARGIN) + DISK_SLACK_BYTES
    if free < want:
        raise PastCopyError(
            f"not enough disk for the past copy under {parent}: it needs about {want >> 20} MiB (the database's "
            f"{need >> 20} MiB and room for WAL), {free >> 20} MiB are free. Free space there, or restore under "
            "another directory (time_travel_directory)")


def restore_past(engine: Pgbackrest, states: list[RepoState], target: Target, datadir: Path, port: int,
                 repo: int | None = None, prefix: tuple[str, ...] = ()) -> tuple[PastCopy, RepoState]:
    """Restore the copy from the nearest repository that covers the target (or the one asked
    for), configure it and start it. It is left running, paused at the target."""
    if target.kind == "time":
        state = check_target(states, target.time, repo)
        before = [b for b in state.backups if b.stop <= target.time]
        backup = before[-1]
    else:
        usable = [s for s in states if s.backups and (repo is None or s.repo == repo)]
        if not usable:
            raise PastCopyError("no repository holds a backup to restore from: take one (pgharbor-timetravel backup "
                                "--type full on the DB host) or name another repository (time_travel_repo)")
        state, backup = usable[0], usable[0].backups[-1]
    if datadir.exists():
        raise PastCopyError(f"{datadir} exists already: drop the past copy there first (discard), or choose "
                            "another directory")
    check_disk(datadir.parent, backup.database_size)
    subprocess.run([*prefix, "mkdir", "-m", "0700", str(datadir)], check=True, capture_output=True)
    copy = PastCopy(datadir, port, prefix)
    record = {"target": target.text(), "repo": state.repo, "tier": state.tier, "backup": backup.label, "port": port,
              "restored": dt.datetime.now(dt.timezone.utc).isoformat()}
    try:
        engine.run("restore", *restore_options(engine, state.repo, datadir), f"--set={backup.label}",
                   *target.options())
        copy.configure()
        copy._write(RECORD, json.dumps(record, indent=2, sort_keys=True) + "\n")
        copy.start()
    except BaseException:
        copy.drop()
        raise
    return copy, state
