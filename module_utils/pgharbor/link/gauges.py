"""The link check's report (check.py) as gauges for node_exporter's
textfile collector, labelled with the service the application uses: what
the monitoring host alerts on (the link down, slow, unprotected, its
certificate running out) and what the daily report plots. The limits go
with the figures, so that the alerts compare with the inventory's own
values (check_connection_thresholds), not with a copy."""

from __future__ import annotations

from ..common.gauges import gauge, labels
from .check import HINTS, ConnReport, Thresholds


def failure_cause(problem: str) -> str:
    """The cause label of a connection failure's message (check.HINTS names each)."""
    for needle, cause, _ in HINTS:
        if needle in problem:
            return cause
    return "other"


def link_gauges(service: str, report: ConnReport, thresholds: Thresholds) -> list[str]:
    out: list[str] = []
    svc = labels(service=service)
    gauge(out, "pgharbor_link_up", "1 when the application's service connected", [(svc, int(report.reachable))])
    gauge(out, "pgharbor_link_passed", "1 when the link check found no problem", [(svc, int(report.passed))])
    gauge(out, "pgharbor_link_problems", "Problems the link check found", [(svc, len(report.problems))])
    if not report.reachable:
        cause = failure_cause(report.problems[0] if report.problems else "")
        gauge(out, "pgharbor_link_failure", "1 for the cause of the failed connection",
              [(labels(service=service, cause=cause), 1)])
    if report.server:
        gauge(out, "pgharbor_link_server_info", "The server that answered the application's service, and its role",
              [(labels(service=service, server=report.server["host"], role=report.server["role"]), 1)])
    for name, text, measured in (
            ("pgharbor_link_connect_seconds", "Time to connect (TCP, TLS, authentication)", report.connect_ms),
            ("pgharbor_link_query_seconds", "Round trip of SELECT 1 on an open connection", report.query_ms)):
        gauge(out, name, text, [(labels(service=service, quantile=q), measured[p] / 1000)
                                for q, p in (("0.5", "p50"), ("0.95", "p95")) if p in measured])
    for name, text, limit in (
            ("pgharbor_link_connect_p95_limit_seconds", "connect_p95_ms of check_connection_thresholds",
             thresholds.connect_p95_ms),
            ("pgharbor_link_query_p95_limit_seconds", "query_p95_ms of check_connection_thresholds",
             thresholds.query_p95_ms)):
        gauge(out, name, text, [(svc, limit / 1000 if limit is not None else None)])
    tls = report.tls
    if tls:
        gauge(out, "pgharbor_link_tls", "1 when the link is encrypted", [(svc, int(bool(tls.get("in_use"))))])
    if tls.get("in_use"):
        cert = tls.get("certificate") or {}
        gauge(out, "pgharbor_link_tls_info", "The link's TLS version, cipher and sslmode",
              [(labels(service=service, version=tls["protocol"], cipher=tls["cipher"], sslmode=tls["sslmode"]), 1)])
        gauge(out, "pgharbor_link_verify_full", "1 when libpq's verify-full accepts the server's certificate",
              [(svc, int(bool(cert.get("verify_full"))))])
        gauge(out, "pgharbor_link_certificate_days_left", "Days until the server's certificate expires",
              [(svc, cert.get("days_left"))])
        gauge(out, "pgharbor_link_certificate_min_days", "min_cert_days of check_connection_thresholds",
              [(svc, thresholds.min_cert_days)])
    if report.authentication:
        gauge(out, "pgharbor_link_authentication_info", "How the application authenticates, and as whom",
              [(labels(service=service, method=report.authentication["method"],
                       user=report.authentication["user"]), 1)])
    return out
