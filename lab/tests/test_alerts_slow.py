"""The faults whose rules wait long by design (DiskFullSoon 30 minutes,
GaugesStale 35, RestoreDrillOverdue an hour, ...): each broken in the lab,
its alerts measured at the receiver, healed, their resolution measured, as
test_monitoring_server.py does for the quick ones. `make lab-test-slow` runs
them on a lab that is up (about 70 minutes, the longest fault's time: they
run side by side, those that would mask each other in turn); not part of
make test.

A limit measured in hours or days is lowered for the test where the fault
would otherwise take that long to matter (the time-travel drill's age, the
tiers' lag), in the file the check or Prometheus reads, and put back after:
the fault itself, the gauges, the rule and its wait are the real ones."""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager

import pytest
from alerting import BACKUP1, DB1, LEGACY, MON1, Fault, in_turn, query, run, wait_for
from certs import make_leaf
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from labhosts import CONTAINERS, REPO

pytestmark = pytest.mark.slow

PSQL = "runuser -u postgres -- psql -XAtq -d postgres"
TLS = "/etc/postgresql/15/main/tls"
REPO1_ARCHIVE = "/var/lib/pgbackrest/archive/main"
THRESHOLDS = "/etc/prometheus/rules/thresholds.yml"
SERVICES = "/etc/postgresql-common/pg_service.conf"
FILL = "/srv/pgharbor-fill"
FILL_DEVICE = "/dev/pgharbor-fill"


def on_lab_machine(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


@contextmanager
def small_filesystem(host: str, size_mb: int) -> Iterator[None]:
    """An ext4 filesystem of size_mb made for the test and mounted at FILL in host's container. The
    container may not mount, so the lab machine's root makes a loop device and mounts it inside the
    container's mount namespace. Everything is removed afterwards."""
    image = f"/var/tmp/pgharbor-lab-fill-{host}.img"
    on_lab_machine("truncate", "-s", f"{size_mb}M", image)
    on_lab_machine("mkfs.ext4", "-q", "-F", "-m", "0", image)
    loop = on_lab_machine("losetup", "--find", "--show", image)
    device = os.stat(loop).st_rdev
    inside = ["nsenter", "--target", on_lab_machine("podman", "inspect", "--format", "{{.State.Pid}}",
                                                    CONTAINERS[host]), "--mount", "--", "sh", "-c"]
    try:
        on_lab_machine(*inside, f"mkdir -p {FILL} && mknod {FILL_DEVICE} b {os.major(device)} {os.minor(device)} "
                                f"&& mount {FILL_DEVICE} {FILL}")
        yield
    finally:
        subprocess.run([*inside, f"umount {FILL}; rm -f {FILL_DEVICE}; rmdir {FILL}"], check=False)
        subprocess.run(["losetup", "--detach", loop], check=False)
        os.unlink(image)


def disk_filling_up() -> Fault:
    """The small filesystem on db1 filled to 30 % free, then by 256 KiB every 30 s. The fix is the
    operator's: the writer stopped and the files removed; with over 40 % free the alert ends."""
    def breaking() -> None:
        free = int(DB1.run(f"df --output=avail -B1 {FILL} | tail -1").stdout)
        size = int(DB1.run(f"df --output=size -B1 {FILL} | tail -1").stdout)
        run(DB1, f"head -c {free - int(size * 0.3)} /dev/zero > {FILL}/bulk")
        run(DB1, f"systemd-run --collect --unit=pgharbor-lab-fill sh -c 'i=0; while sleep 30; do "
                 f"head -c 262144 /dev/zero > {FILL}/steady.$i; i=$((i+1)); done'")

    return Fault("a disk filling up on db1 (a 128 MiB filesystem)", "DiskFullSoon", "db1", breaking,
                 lambda: run(DB1, f"systemctl stop pgharbor-lab-fill; rm -f {FILL}/bulk {FILL}/steady.*"),
                 {"severity": "warning", "mountpoint": FILL}, within=45 * 60)


def gauges_stale() -> Fault:
    """db1's firewall gauges no longer written (their timer stopped): the file ages past the rule's
    30 minutes. Measured from the moment it did."""
    prom = "/var/lib/prometheus/node-exporter/pgharbor_firewall.prom"

    def breaking() -> float:
        run(DB1, "systemctl stop pgharbor-gauges-firewall.timer")
        return int(run(DB1, f"stat -c %Y {prom}")) + 1800

    return Fault("db1's firewall gauges no longer written", "GaugesStale", "db1", breaking,
                 lambda: run(DB1, "systemctl start pgharbor-gauges-firewall.timer"),
                 {"severity": "warning", "file": prom}, within=45 * 60)


def archiving_failing() -> Fault:
    """repo1's archive made read-only on db1 (its directories' write bits taken), and a WAL segment
    switched for archiving: archive_command fails, and the tier-1 archive falls behind the time-travel
    RPO (the lab's 5 minutes). The fix: the modes as they were; PostgreSQL retries by itself."""
    modes = "/root/pgharbor-lab-repo1-modes"

    def breaking() -> None:
        run(DB1, f"find {REPO1_ARCHIVE} -type d -printf '%m %p\\n' > {modes} && "
                 f"find {REPO1_ARCHIVE} -type d -exec chmod a-w {{}} +")
        run(DB1, f"{PSQL} -c 'SELECT txid_current()' -c 'SELECT pg_switch_wal()'")

    return Fault("repo1's archive read-only on db1", "ArchivingFailing", "db1", breaking,
                 lambda: run(DB1, f"while read -r mode dir; do chmod \"$mode\" \"$dir\"; done < {modes} && rm {modes}"),
                 {"severity": "critical"}, within=20 * 60, resolved_within=15 * 60,
                 also=(("TimeTravelUnhealthy", {"host": "db1", "tier": "tier1"}),))


def drill_failing() -> Fault:
    """One byte changed in the newest WAL segment of repo1, and a time-travel drill of repo1: its
    verify finds the damage, the drill fails. The fix: the file as it was, and a drill that passes."""
    kept = "/root/pgharbor-lab-damaged-wal"
    drill = "runuser -u postgres -- pgharbor-timetravel drill --repo 1"
    damaged: list[str] = []

    def breaking() -> None:
        segment = run(DB1, f"find {REPO1_ARCHIVE} -type f -regextype posix-extended "
                           "-regex '.*/[0-9A-F]{24}-[0-9a-f]{40}[^/]*' | sort | tail -1").strip()
        assert segment, f"no WAL segment in {REPO1_ARCHIVE}"
        damaged.append(segment)
        run(DB1, f"cp -p {segment} {kept} && printf X | dd of={segment} bs=1 seek=100 conv=notrunc status=none")
        out = DB1.run(drill)
        assert out.rc == 1, f"the drill of a damaged repository passed: {out.stdout}{out.stderr}"

    def healing() -> None:
        if damaged:
            run(DB1, f"cp -p {kept} {damaged[0]} && rm {kept}")
        run(DB1, drill)

    return Fault("a damaged WAL segment in repo1 on db1", "RestoreDrillFailed", "db1", breaking, healing,
                 {"severity": "warning", "host": "db1", "tier": "tier1"}, within=10 * 60, resolved_within=10 * 60)


def connections_near_limit() -> Fault:
    """Connections held on db1 until 92 of its max_connections are in use (a pool grown too big, a
    leak): over the rule's 90 %. The fix: those sessions ended."""
    unit = "pgharbor-lab-connections"

    def breaking() -> None:
        limit = int(run(DB1, f"{PSQL} -c 'SHOW max_connections'"))
        used = int(run(DB1, f"{PSQL} -c \"SELECT count(*) FROM pg_stat_activity "
                            "WHERE backend_type = 'client backend'\""))
        held = math.ceil(0.92 * limit) - used
        run(DB1, f"systemd-run --collect --unit={unit} -p User=postgres -E PGAPPNAME={unit} sh -c "
                 f"'for i in $(seq {held}); do psql -X -d postgres -c \"SELECT pg_sleep(7200)\" & done; wait'")

    def healing() -> None:
        run(DB1, f"systemctl stop {unit}; {PSQL} -c \"SELECT count(pg_terminate_backend(pid)) "
                 f"FROM pg_stat_activity WHERE application_name = '{unit}'\"")

    return Fault("92 % of db1's connections held", "ConnectionsNearLimit", "db1", breaking, healing,
                 {"severity": "warning"}, within=10 * 60)


@contextmanager
def kept(host, *paths: str) -> Iterator[None]:
    """Files a fault changes, put back as they were (content, owner, mode) afterwards."""
    run(host, " && ".join(f"cp -p {p} {p}.lab-test" for p in paths))
    try:
        yield
    finally:
        run(host, " && ".join(f"mv -f {p}.lab-test {p}" for p in paths))


def serve_certificate(days: int, names: tuple[str, ...] | None = None) -> None:
    """db1's server certificate replaced by one from the lab's CA, valid for `days`, for the names
    of the current one or for `names`; the server reloaded."""
    ca = (x509.load_pem_x509_certificate((REPO / "pki" / "lab" / "ca.crt").read_bytes()),
          serialization.load_pem_private_key((REPO / "pki" / "lab" / "ca.key").read_bytes(), None))
    current = x509.load_pem_x509_certificate(DB1.file(f"{TLS}/server.crt").content)
    san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    cn = current.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    dns = tuple(san.get_values_for_type(x509.DNSName))
    if names:
        cn, dns, ips = names[0], names, ()
    cert, key = make_leaf(ca, cn=cn, dns=dns, ips=ips, valid_days=days)
    for name, pem in (("server.crt", cert.public_bytes(serialization.Encoding.PEM)),
                      ("server.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))):
        run(DB1, f"echo {base64.b64encode(pem).decode()} | base64 -d > {TLS}/{name}")
    run(DB1, "systemctl reload postgresql@15-main")


@contextmanager
def db1_certificate_kept() -> Iterator[None]:
    try:
        with kept(DB1, f"{TLS}/server.crt", f"{TLS}/server.key"):
            yield
    finally:
        run(DB1, "systemctl reload postgresql@15-main")


def certificate_expiring() -> Fault:
    """db1 serving a certificate from the lab's CA that expires in 9 days, under the link check's
    min_cert_days (30): the renewal was missed. The fix: the pki role's certificate back."""
    changed = ExitStack()

    def breaking() -> None:
        changed.enter_context(db1_certificate_kept())
        serve_certificate(days=10)

    return Fault("db1's certificate 9 days from its end", "CertificateExpiring", "legacy", breaking, changed.close,
                 {"severity": "warning", "service": "buffer_remote"}, within=15 * 60)


def link_unprotected() -> Fault:
    """The application's services weakened to sslmode=verify-ca on legacy, and db1 serving a
    certificate of the lab's CA issued for another name: the application connects, but to a server
    whose name it no longer checks (an impostor with any certificate of that CA would do). The fix:
    the services as pg_client wrote them, and db1's own certificate."""
    changed = ExitStack()

    def breaking() -> None:
        changed.enter_context(kept(LEGACY, SERVICES))
        run(LEGACY, f"sed -i 's/^sslmode=verify-full$/sslmode=verify-ca/' {SERVICES} && grep -q verify-ca {SERVICES}")
        changed.enter_context(db1_certificate_kept())
        serve_certificate(days=90, names=("impostor.invalid",))

    return Fault("the link to an impostor (sslmode=verify-ca, a certificate for another name)", "LinkUnprotected",
                 "legacy", breaking, changed.close, {"severity": "critical", "service": "buffer_remote"},
                 within=6 * 60)


_thresholds = threading.Lock()


def set_threshold(name: str, value: float) -> float:
    """One of the rules' thresholds (pgharbor:threshold:<name>) set in mon1's thresholds file,
    Prometheus reloaded; returns the value it had."""
    with _thresholds:
        before = float(query(f"pgharbor:threshold:{name}")[0]["value"][1])
        run(MON1, f"sed -i '/record: pgharbor:threshold:{name}$/{{n;s/vector([^)]*)/vector({value!r})/}}' "
                  f"{THRESHOLDS} && promtool check rules {THRESHOLDS} && systemctl reload prometheus")
        wait_for(f"pgharbor:threshold:{name} at {value}",
                 lambda: math.isclose(float(query(f"pgharbor:threshold:{name}")[0]["value"][1]), value), 120)
    return before


def newest_logical_age() -> float:
    # status exits 1 while a tier is unhealthy, which this fault makes one
    return json.loads(DB1.run("runuser -u postgres -- pgharbor-backup status --json").stdout)["newest_age_seconds"]


def tier2_behind() -> Fault:
    """backup1's SSH stopped, so db1's logical backups no longer reach tier 2, and a backup taken: tier
    1 moves on, tier 2 keeps the one before. The rule's 90 minutes (tier_lag_minutes) are lowered to
    10, so the backup is taken once the newest one is 11 minutes old. The fix: SSH started, a backup
    that ships what tier 2 lacks, the threshold back."""
    lag_minutes = 10
    before: list[float] = []

    def breaking() -> float:
        before.append(set_threshold("tier_lag_minutes", lag_minutes))
        run(BACKUP1, "systemctl stop ssh")
        time.sleep(max(0.0, (lag_minutes + 1) * 60 - newest_logical_age()))
        DB1.run("systemctl start pgharbor-backup.service")  # fails: tier 2 cannot be reached
        assert newest_logical_age() < 300, "the backup with tier 2 down did not keep tier 1"
        return time.time()  # tier 2 is behind from here

    def healing() -> None:
        try:
            run(BACKUP1, "systemctl start ssh")
            run(DB1, "systemctl start pgharbor-backup.service")
        finally:
            if before:
                set_threshold("tier_lag_minutes", before[0])

    return Fault("db1's logical backups no longer reaching tier 2 (backup1's SSH stopped)", "BackupTierBehind",
                 "backup1", breaking, healing, {"severity": "warning", "host": "db1", "tier": "tier2"},
                 within=25 * 60)


def logical_drill_overdue() -> Fault:
    """No restore drill of db1's logical backups for longer than logical_drill_max_age_days, lowered
    from 8 days to the newest drill's age plus a minute; the rule then waits an hour. The fix: the
    threshold back (in real life: a drill, verify-backups.yml)."""
    before: list[float] = []

    def breaking() -> float:
        verified = float(query('pgharbor_backup_verified_timestamp_seconds{host="db1",tier="tier1"}')[0]["value"][1])
        overdue = time.time() + 60
        before.append(set_threshold("logical_drill_max_age_days", (overdue - verified) / 86400))
        return overdue

    def healing() -> None:
        if before:
            set_threshold("logical_drill_max_age_days", before[0])

    return Fault("no drill of db1's logical backups within the (lowered) limit", "RestoreDrillOverdue", "db1",
                 breaking, healing,
                 {"severity": "warning", "host": "db1", "tier": "tier1"}, within=75 * 60)


def test_the_slow_faults_reach_the_receiver_and_resolve(measured):
    """Side by side; in turn where one would mask the other (db1's certificate and its connections;
    repo1's archive and its drill)."""
    lines = [
        [disk_filling_up()],
        [gauges_stale()],
        [archiving_failing(), drill_failing()],
        [connections_near_limit(), certificate_expiring(), link_unprotected()],
        [tier2_behind()],
        [logical_drill_overdue()],
    ]
    with small_filesystem("db1", 128), ThreadPoolExecutor(len(lines)) as pool:
        running = [pool.submit(in_turn, *line) for line in lines]
    # Every line's times are kept (printed at the end) before a failed line fails the test.
    for done in running:
        if not done.exception():
            measured += done.result()
    for done in running:
        done.result()
