"""The application's link to its database, measured from the application's
host with the application's own connection settings (a pg_client service,
say): can it connect, how long does connecting and a trivial query take,
what protects the link (TLS, the server's certificate, the authentication),
how fast does data move each way, and does a client get the database back
after a server restart within the retry policy.

Nothing is written on the server: throughput is measured with query
parameters going up and query results coming down, so the check needs no
privilege beyond CONNECT (the least-privilege users have no TEMPORARY).
Each threshold crossed becomes a problem that names the threshold.
"""

from __future__ import annotations

import math
import os
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import psycopg

from ..common.settings import ConfigError
from ..pg.tls import on_socket, ssl_state
from .retry import GaveUp, RetryPolicy, with_retry

APPLICATION_NAME = "pgharbor conn check"
# What the restart watch calls itself on the server, so that whoever restarts
# the server can wait until the watch is in place (check_connection.yml does).
WATCH_APPLICATION_NAME = "pgharbor conn check restart watch"
MB = 1_000_000
DEFAULT_TIMEOUT = 10
CHUNK = 4 * 1024 * 1024
# PostgreSQL's SSLRequest: length 8, then the code 1234.5679.
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
SHORT_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
               "stateOrProvinceName": "ST", "localityName": "L", "domainComponent": "DC"}


@dataclass(frozen=True)
class Thresholds:
    connect_p95_ms: float | None = None
    query_p95_ms: float | None = None
    min_upload_mb_s: float | None = None
    min_download_mb_s: float | None = None
    min_cert_days: int = 30
    require_verify_full: bool = True


@dataclass(frozen=True)
class CheckSettings:
    attempts: int = 10
    queries: int = 100
    throughput_mb: int = 16
    restart_test: bool = False
    restart_window_seconds: float = 120
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # None: the connection's own connect_timeout (pg_client's services set
    # one), or DEFAULT_TIMEOUT where the conninfo names neither.
    timeout_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("attempts", "queries"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1 (it is {getattr(self, name)})")
        if self.throughput_mb < 0:
            raise ConfigError(f"throughput_mb must be 0 (no throughput test) or more (it is {self.throughput_mb})")


@dataclass
class ConnReport:
    target: str
    reachable: bool = False
    # which server answered and what it is: with a service naming every member
    # of a cluster, the application's connection may land on any of them
    server: dict = field(default_factory=dict)
    connect_ms: dict = field(default_factory=dict)
    tcp_connect_ms: dict = field(default_factory=dict)
    query_ms: dict = field(default_factory=dict)
    tls: dict = field(default_factory=dict)
    authentication: dict = field(default_factory=dict)
    throughput: dict = field(default_factory=dict)
    restart: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> list[str]:
        lines = [f"{self.target}: {'PASS' if self.passed else 'FAIL'}"]
        if self.server:
            lines.append(f"answered by {self.server['host']}:{self.server['port']}, the {self.server['role']}")
        if self.connect_ms:
            lines.append(f"connect (TCP+TLS+auth) ms p50/p95/p99: {_triple(self.connect_ms)}"
                         + (f"; TCP alone p50 {self.tcp_connect_ms['p50']}" if self.tcp_connect_ms else ""))
        if self.query_ms:
            lines.append(f"SELECT 1 round trip ms p50/p95/p99: {_triple(self.query_ms)}")
        if self.tls.get("in_use"):
            cert = self.tls.get("certificate", {})
            lines.append(f"TLS {self.tls['protocol']} {self.tls['cipher']}, sslmode={self.tls['sslmode']}, "
                         f"verify-full {'passes' if cert.get('verify_full') else 'FAILS'}; server certificate "
                         f"{cert.get('subject')} from {cert.get('issuer')}, {cert.get('days_left')} days left")
        elif self.tls:
            lines.append(f"TLS: {self.tls.get('detail', 'not in use')}")
        if self.authentication:
            lines.append(f"authentication: {self.authentication['method']} as {self.authentication['user']}")
        if self.throughput:
            lines.append(f"throughput over {self.throughput['volume_mb']} MB: "
                         f"up {self.throughput['upload_mb_s']} MB/s, "
                         f"down {self.throughput['download_mb_s']} MB/s")
        if self.restart:
            lines.append(f"restart: {self.restart['detail']}")
        lines += [f"problem: {p}" for p in self.problems]
        return lines


def percentiles(samples: list[float]) -> dict:
    """p50/p95/p99 by linear interpolation between the closest ranks, with
    min, max and the count, in ms rounded to 0.01."""
    ordered = sorted(samples)

    def at(p: float) -> float:
        rank = (len(ordered) - 1) * p
        low, high = math.floor(rank), math.ceil(rank)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

    return {"p50": round(at(0.50), 2), "p95": round(at(0.95), 2), "p99": round(at(0.99), 2),
            "min": round(ordered[0], 2), "max": round(ordered[-1], 2), "count": len(ordered)}


def check_connection(conninfo: str, settings: CheckSettings = CheckSettings(),
                     thresholds: Thresholds = Thresholds()) -> ConnReport:
    override = _connect_timeout(conninfo, settings.timeout_seconds)
    timeout = settings.timeout_seconds or DEFAULT_TIMEOUT

    def open_(name: str = APPLICATION_NAME) -> psycopg.Connection:
        return psycopg.connect(conninfo, autocommit=True, application_name=name, **override)

    try:
        conn = open_()
    except psycopg.Error as exc:
        report = ConnReport(target=conninfo_target(conninfo))
        report.problems.append(f"cannot connect: {_first_line(exc)}; {hint(str(exc))}")
        return report
    with conn:
        params = libpq_params(conn)
        report = ConnReport(target=_target(params), reachable=True, server=_server(conn, params))
        report.connect_ms = _connect_times(open_, settings.attempts, report)
        if not on_socket(params["host"]):
            report.tcp_connect_ms = _tcp_times(params, settings.attempts, timeout)
        report.query_ms = percentiles([_timed(lambda: conn.execute("SELECT 1").fetchone())
                                       for _ in range(settings.queries)])
        report.tls = _tls(conn, params, timeout)
        report.authentication = _authentication(conn, params)
        if settings.throughput_mb:
            report.throughput = _throughput(conn, settings.throughput_mb)
    if settings.restart_test:
        report.restart = watch_restart(open_, settings)
    report.problems += problems(report, params, thresholds, settings)
    return report


def libpq_params(conn: psycopg.Connection) -> dict[str, str]:
    """Every connection option as libpq resolved it (service file,
    environment and defaults applied): what the application would use."""
    found = {opt.keyword.decode(): (opt.val or b"").decode() for opt in conn.pgconn.info}
    found["host"] = conn.info.host
    found["port"] = str(conn.info.port)
    return found


def _server(conn: psycopg.Connection, params: dict[str, str]) -> dict:
    standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    return {"host": params["host"], "port": int(params["port"]), "role": "standby" if standby else "primary"}


def _target(params: dict[str, str]) -> str:
    return f"{params.get('user')}@{params['host']}:{params['port']}/{params.get('dbname')}"


def conninfo_target(conninfo: str) -> str:
    """Who was to be reached, for a report whose connection never came up
    (the password left out)."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "(unparsable conninfo)"
    return " ".join(f"{k}={v}" for k, v in parts.items() if k != "password")


def _timed(step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    return (time.perf_counter() - started) * 1000


def _connect_times(open_: Callable[[], psycopg.Connection], attempts: int, report: ConnReport) -> dict:
    samples, failures = [], []
    for _ in range(attempts):
        started = time.perf_counter()
        try:
            open_().close()
        except psycopg.Error as exc:
            failures.append(_first_line(exc))
            continue
        samples.append((time.perf_counter() - started) * 1000)
    if failures:
        report.problems.append(f"{len(failures)} of {attempts} connection attempts failed (first: {failures[0]}); "
                               f"{hint(failures[0])}")
    return {**(percentiles(samples) if samples else {}), "failures": len(failures)}


def _connect_timeout(conninfo: str, wanted: float | None) -> dict:
    """connect_timeout for psycopg.connect: the one asked for, else none
    where the conninfo or its service sets the application's own, else the
    default (a check must not wait for the kernel's SYN retries)."""
    if wanted:
        return {"connect_timeout": max(1, round(wanted))}
    given = psycopg.conninfo.conninfo_to_dict(conninfo)
    if "connect_timeout" in given or "service" in given or os.environ.get("PGCONNECT_TIMEOUT"):
        return {}
    return {"connect_timeout": DEFAULT_TIMEOUT}


def _tcp_times(params: dict[str, str], attempts: int, timeout: float) -> dict:
    address = (params.get("hostaddr") or params["host"], int(params["port"]))
    samples = []
    for _ in range(attempts):
        started = time.perf_counter()
        with socket.create_connection(address, timeout=timeout):
            samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def _tls(conn: psycopg.Connection, params: dict[str, str], timeout: float) -> dict:
    sslmode = params.get("sslmode") or "prefer"
    if on_socket(params["host"]):
        return {"in_use": False, "sslmode": sslmode, "detail": "local socket: no network to protect"}
    state = ssl_state(conn)
    if not state.in_use:
        return {"in_use": False, "sslmode": sslmode, "detail": f"not encrypted (sslmode={sslmode})"}
    return {"in_use": True, "sslmode": sslmode, "protocol": state.version, "cipher": state.cipher, "bits": state.bits,
            "certificate": server_certificate(params, timeout)}


def server_certificate(params: dict[str, str], timeout: float) -> dict:
    """The server's certificate as a TLS handshake of our own sees it, and
    whether libpq's verify-full would accept it: chained to sslrootcert and
    issued for the host name (checked even when the application's sslmode
    is weaker, so that the report says whether it could be raised)."""
    host, port = params["host"], int(params["port"])
    cafile = params.get("sslrootcert") or os.path.expanduser("~/.postgresql/root.crt")
    facts: dict = {"sslrootcert": cafile if os.path.isfile(cafile) else None}
    try:
        if facts["sslrootcert"]:
            # cafile alone, as libpq: the system's CAs are not trusted for the database
            verifying = ssl.create_default_context(cafile=cafile)
            return {**facts, **_named(_peer_certificate(params, verifying, timeout)), "verify_full": True,
                    "verify_error": ""}
        facts.update(verify_full=False, verify_error=f"no CA file at {cafile} (sslrootcert)")
    except ssl.SSLError as exc:
        facts.update(verify_full=False, verify_error=getattr(exc, "verify_message", None) or exc.reason or str(exc))
    except OSError as exc:
        return {**facts, **_parsed(None), "verify_full": False, "verify_error": f"{host}:{port}: {exc}"}
    trusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    trusting.check_hostname = False
    trusting.verify_mode = ssl.CERT_NONE
    try:
        facts.update(_parsed(_peer_certificate(params, trusting, timeout, binary=True)))
    except OSError:
        facts.update(_parsed(None))  # no certificate to show: the reason is in verify_error
    return facts


def _peer_certificate(params: dict[str, str], context: ssl.SSLContext, timeout: float, binary: bool = False):
    host = params["host"]
    with socket.create_connection((params.get("hostaddr") or host, int(params["port"])), timeout=timeout) as raw:
        raw.sendall(SSL_REQUEST)
        if raw.recv(1) != b"S":
            raise ConnectionRefusedError("the server refused TLS (ssl = off)")
        with context.wrap_socket(raw, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=binary)


def _named(cert: dict) -> dict:
    def name(rdns) -> str:
        # RFC 4514, as cryptography and openssl print it: the most specific first
        return ",".join(f"{SHORT_NAMES.get(k, k)}={v}" for rdn in reversed(rdns) for k, v in rdn)
    return _validity(name(cert["subject"]), name(cert["issuer"]),
                     datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), timezone.utc))


def _parsed(der: bytes | None) -> dict:
    """Subject and validity of a certificate that did not verify (Python's
    ssl parses only verified ones; cryptography, where installed, does)."""
    unknown = {"subject": None, "issuer": None, "not_after": None, "days_left": None}
    if not der:
        return unknown
    try:
        from cryptography import x509
    except ImportError:
        return unknown
    cert = x509.load_der_x509_certificate(der)
    return _validity(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(), cert.not_valid_after_utc)


def _validity(subject: str, issuer: str, not_after: datetime) -> dict:
    return {"subject": subject, "issuer": issuer, "not_after": not_after.isoformat(),
            "days_left": (not_after - datetime.now(timezone.utc)).days}


def _authentication(conn: psycopg.Connection, params: dict[str, str]) -> dict:
    client_dn = ssl_state(conn).client_dn
    if conn.pgconn.used_password:
        method = "password"
    elif client_dn:
        method = "certificate"
    elif on_socket(params["host"]):
        method = "peer (local socket)"
    else:
        method = "none (trust)"
    found = {"method": method, "user": conn.info.user, "client_certificate": client_dn}
    if conn.info.server_version >= 160000:
        found["system_user"] = conn.execute("SELECT system_user").fetchone()[0]
    return found


def _throughput(conn: psycopg.Connection, volume_mb: int) -> dict:
    """Random bytes up as query parameters (the server returns their length,
    proving they arrived), server-made bytes down as binary results: the link
    and TLS, without a table."""
    chunks = -(-volume_mb * MB // CHUNK)
    payload = os.urandom(CHUNK)
    with conn.cursor(binary=True) as cur:
        started = time.perf_counter()
        for _ in range(chunks):
            cur.execute("SELECT octet_length(%b)", [payload])
            if cur.fetchone()[0] != CHUNK:
                raise RuntimeError("the server received a different number of bytes than were sent")
        up = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(chunks):
            cur.execute("SELECT convert_to(repeat('0123456789abcdef', %s), 'UTF8')", [CHUNK // 16])
            if len(cur.fetchone()[0]) != CHUNK:
                raise RuntimeError("the server sent a different number of bytes than were asked for")
        down = time.perf_counter() - started
    volume = chunks * CHUNK / MB
    return {"volume_mb": round(volume, 1), "upload_mb_s": round(volume / up, 1),
            "download_mb_s": round(volume / down, 1)}


def watch_restart(open_: Callable[[str], psycopg.Connection], settings: CheckSettings,
                  poll_seconds: float = 0.2) -> dict:
    """Query until the server goes away, then reconnect with the retry
    policy; a restart counts when the server that answers again started
    later than the one that went away."""
    deadline = time.monotonic() + settings.restart_window_seconds
    conn = open_(WATCH_APPLICATION_NAME)
    try:
        started_before = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
        while time.monotonic() < deadline:
            try:
                conn.execute("SELECT 1")
            except psycopg.OperationalError:
                break
            time.sleep(poll_seconds)
        else:
            return {"observed": False, "detail": f"no restart within {settings.restart_window_seconds:g} s"}
    finally:
        conn.close()
    lost = time.monotonic()
    try:
        conn, retried = with_retry(lambda: open_(WATCH_APPLICATION_NAME), settings.retry, (psycopg.OperationalError,))
    except GaveUp as exc:
        return {"observed": True, "reconnected": False, "attempts": exc.attempts,
                "detail": f"lost the server and {exc}"}
    with conn:
        started_after = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
    outage = round(time.monotonic() - lost, 2)
    return {"observed": True, "reconnected": True, "restarted": started_after > started_before,
            "outage_seconds": outage, "attempts": retried.attempts,
            "detail": f"server {'restarted' if started_after > started_before else 'unreachable'} "
                      f"and back after {outage} s, {retried.attempts} connection "
                      f"{'attempt' if retried.attempts == 1 else 'attempts'}"}


def problems(report: ConnReport, params: dict[str, str], t: Thresholds, settings: CheckSettings) -> list[str]:
    found = []
    if t.connect_p95_ms is not None and report.connect_ms.get("p95", 0) > t.connect_p95_ms:
        found.append(f"connecting takes {report.connect_ms['p95']} ms at p95, above the threshold connect_p95_ms "
                     f"({t.connect_p95_ms:g}): look at the network path and the server's load")
    if t.query_p95_ms is not None and report.query_ms.get("p95", 0) > t.query_p95_ms:
        found.append(f"a query round trip takes {report.query_ms['p95']} ms at p95, above the threshold "
                     f"query_p95_ms ({t.query_p95_ms:g}): the link's latency is too high for the application")
    for way, limit in (("upload", t.min_upload_mb_s), ("download", t.min_download_mb_s)):
        speed = report.throughput.get(f"{way}_mb_s")
        if limit is not None and speed is not None and speed < limit:
            found.append(f"{way} runs at {speed} MB/s, below the threshold min_{way}_mb_s ({limit:g})")
    found += _tls_problems(report, params, t)
    if report.authentication.get("method") == "none (trust)":
        found.append(f"the server let {report.authentication['user']} in without a password or certificate "
                     "(trust): pg_hba.conf must ask for scram-sha-256 or cert (postgresql_server_hba_rules)")
    restart = report.restart
    if settings.restart_test and not restart.get("observed"):
        found.append(f"restart_test: {restart.get('detail')}: restart the server while the check runs "
                     "(check_connection.yml with check_connection_restart_test does)")
    elif settings.restart_test and not restart.get("reconnected"):
        found.append(f"restart_test: {restart['detail']}: the server did not come back within the retry policy "
                     f"(deadline {settings.retry.deadline_seconds:g} s); see its log")
    return found


def _tls_problems(report: ConnReport, params: dict[str, str], t: Thresholds) -> list[str]:
    tls = report.tls
    if on_socket(params["host"]):
        return []
    if not tls.get("in_use"):
        return [f"the connection is not encrypted (sslmode={tls.get('sslmode')}): set sslmode=verify-full and "
                "sslrootcert in the client's service (pg_client_services)"]
    found = []
    cert = tls["certificate"]
    if not cert.get("verify_full"):
        found.append(f"verify-full fails: {cert.get('verify_error')}; sslrootcert must be the CA that signed the "
                     "server's certificate, and the certificate must name the host the client uses")
    if t.require_verify_full and tls["sslmode"] != "verify-full":
        unchecked = "the server's name" if tls["sslmode"] == "verify-ca" else "the server's certificate"
        found.append(f"sslmode={tls['sslmode']} does not check {unchecked}: set sslmode=verify-full in the "
                     "client's service (pg_client_services)")
    days = cert.get("days_left")
    if days is not None and days < t.min_cert_days:
        found.append(f"the server certificate expires in {days} days, below the threshold min_cert_days "
                     f"({t.min_cert_days}): renew it (docs/SECURITY_GUIDE.md, rotating the server certificate)")
    return found


# What libpq says, a short name for it (the cause label of the link's
# gauges), and what usually causes it.
HINTS = (
    ("timeout expired", "timeout",
     "no answer: the firewall drops this host (it is not in db_client_networks) or the server is down"),
    ("Connection refused", "refused",
     "nothing listens there: the server is down or listens elsewhere (postgresql_server_listen_addresses, db_port)"),
    ("no pg_hba.conf entry", "rejected",
     "the server does not accept this host or user: add the network to db_client_networks or the user to the "
     "database's rules"),
    ("password authentication failed", "authentication",
     "wrong password: compare the vault's value with the server's user"),
    ("certificate verify failed", "certificate",
     "the server's certificate is not signed by sslrootcert: deploy the environment's CA (pki_dir/ca.crt) with "
     "pg_client"),
    ("does not match host name", "certificate_name",
     "the server's certificate does not name the host the client uses: connect by a name in pki_server_dns_names "
     "or reissue the certificate"),
    ("could not translate host name", "dns", "the host name does not resolve: check DNS or /etc/hosts"),
    ("root certificate file", "no_ca", "the CA file is missing: run pg_client for this host"),
)


def hint(message: str) -> str:
    for needle, _, cause in HINTS:
        if needle in message:
            return cause
    return "see the server's log and docs/TROUBLESHOOTING.md"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _triple(ms: dict) -> str:
    return f"{ms.get('p50')}/{ms.get('p95')}/{ms.get('p99')}" if "p50" in ms else "none succeeded"
