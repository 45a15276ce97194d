#!/usr/bin/python
"""Ansible wrapper around pgharbor.link.check."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pg_conn_check
short_description: Measure and judge a client host's link to its PostgreSQL database
description:
  - Run on the application's host with the application's connection settings (a pg_client service, C(service=<name>)),
    it reports what the application's link is like and fails, naming the threshold, when it is not good enough.
  - "Reachability and the time to connect (TCP, TLS and authentication together; TCP alone beside it) as p50/p95/p99
    over O(attempts) connections; the round trip of C(SELECT 1) over O(queries) queries."
  - "TLS: protocol, cipher, the server certificate's subject, issuer and days to expiry, and whether verify-full
    passes (checked by a TLS handshake of its own against the C(sslrootcert) libpq resolved, even when the client's
    C(sslmode) is weaker); the authentication that was used (password, certificate, peer)."
  - "Throughput both ways over O(throughput_mb) MB: random bytes up as query parameters, bytes down as query results.
    Nothing is written on the server and no privilege beyond CONNECT is needed."
  - With O(restart_test), after the measurements it holds a connection open (application_name
    C(pgharbor conn check restart watch)) until the server goes away, reconnects with the retry policy (exponential
    backoff with full jitter until O(retry.deadline_seconds)) and reports the outage; whoever runs the check restarts
    the server meanwhile (C(playbooks/check_connection.yml) does, in the lab and staging).
  - Reads only, so check mode runs the same check.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment:
  - pgharbor_attributes
options:
  target:
    description: The libpq conninfo, as the application would use it (C(service=buffer) reads the pg_client service).
    type: str
    required: true
  target_password:
    description: Password for O(target), where it is not in a password file.
    type: str
  attempts:
    description: Connections opened to time connecting.
    type: int
    default: 10
  queries:
    description: C(SELECT 1) round trips timed on one connection.
    type: int
    default: 100
  throughput_mb:
    description: MB moved each way to measure throughput; C(0) skips it.
    type: int
    default: 16
  restart_test:
    description: Wait for the server to restart during the check and require the reconnection within O(retry).
    type: bool
    default: false
  restart_window:
    description: Seconds the restart watch waits for the server to go away before the restart test fails.
    type: int
    default: 120
  retry:
    description: The reconnection policy (the one docs/CONNECTIONS.md asks applications to use).
    type: dict
    default: {}
    suboptions:
      base_seconds:
        description: The first wait's upper bound; each further wait's bound doubles.
        type: float
        default: 0.5
      cap_seconds:
        description: The largest bound of a wait.
        type: float
        default: 8
      deadline_seconds:
        description: Seconds after losing the server by which the client must have it back.
        type: float
        default: 60
  thresholds:
    description: Limits that turn into a failure with the reason; an unset one is only reported.
    type: dict
    default: {}
    suboptions:
      connect_p95_ms:
        description: Highest acceptable p95 of the time to connect.
        type: float
      query_p95_ms:
        description: Highest acceptable p95 of a query round trip.
        type: float
      min_upload_mb_s:
        description: Lowest acceptable throughput towards the server.
        type: float
      min_download_mb_s:
        description: Lowest acceptable throughput from the server.
        type: float
      min_cert_days:
        description: Fewest days the server's certificate must still be valid.
        type: int
        default: 30
      require_verify_full:
        description: Fail unless the client's C(sslmode) is C(verify-full) (a local socket needs no TLS).
        type: bool
        default: true
  timeout:
    description:
      - Seconds to wait for one connection. Unset, the connection's own C(connect_timeout) applies (every pg_client
        service sets one), or 10 where O(target) sets neither it nor a service.
    type: int
requirements:
  - psycopg >= 3.1 (python3-psycopg) on the host the module runs on
notes:
  - "Messages and fixes for each problem: docs/TROUBLESHOOTING.md."
"""

EXAMPLES = r"""
- name: Check the application's link with its own settings
  pg_conn_check:
    target: service=buffer
    throughput_mb: 64
    thresholds:
      connect_p95_ms: 100
      query_p95_ms: 5
      min_download_mb_s: 50
  become: true
  become_user: buffer_app
  register: link

- name: The same while the server restarts (lab, staging)
  pg_conn_check:
    target: service=buffer
    restart_test: true
    retry: {deadline_seconds: 30}
  become: true
  become_user: buffer_app
  async: 300
  poll: 0
"""

RETURN = r"""
passed:
  description: No problem was found.
  returned: always
  type: bool
  sample: true
target:
  description: Who was reached (user@host:port/dbname as libpq resolved them), without the password.
  returned: always
  type: str
  sample: app_rw@db1:5432/buffer
reachable:
  description: The first connection succeeded.
  returned: always
  type: bool
  sample: true
connect_ms:
  description: Time to connect (TCP, TLS, authentication) in ms over O(attempts), and how many attempts failed.
  returned: when reachable
  type: dict
  sample: {p50: 9.1, p95: 12.4, p99: 13.0, min: 8.7, max: 13.1, count: 10, failures: 0}
tcp_connect_ms:
  description: The TCP connection alone, in ms (not for a local socket).
  returned: when reachable over TCP
  type: dict
  sample: {p50: 0.2, p95: 0.3, p99: 0.3, min: 0.1, max: 0.3, count: 10}
query_ms:
  description: Round trip of C(SELECT 1) in ms.
  returned: when reachable
  type: dict
  sample: {p50: 0.3, p95: 0.5, p99: 0.9, min: 0.2, max: 1.1, count: 100}
tls:
  description: Whether TLS is in use, with the C(sslmode), protocol, cipher, key bits and the server certificate
    (subject,
    issuer, not_after, days_left, sslrootcert, verify_full, verify_error).
  returned: when reachable
  type: dict
  sample:
    in_use: true
    sslmode: verify-full
    protocol: TLSv1.3
    cipher: TLS_AES_256_GCM_SHA384
    bits: 256
    certificate: {subject: CN=db1, issuer: CN=pgharbor lab CA, not_after: "2027-03-01T10:00:00+00:00", days_left: 88,
                  sslrootcert: /etc/pgharbor/pg/buffer/ca.crt, verify_full: true, verify_error: ""}
authentication:
  description: How the server authenticated the client (C(password), C(certificate), C(peer (local socket)),
    C(none (trust))), the user, and the client certificate's subject when one was sent.
  returned: when reachable
  type: dict
  sample: {method: password, user: app_rw, client_certificate: null}
throughput:
  description: MB/s each way and the volume moved (empty when O(throughput_mb) is 0).
  returned: when reachable
  type: dict
  sample: {volume_mb: 16.8, upload_mb_s: 180.2, download_mb_s: 240.5}
restart:
  description: What the restart watch saw (empty without O(restart_test)).
  returned: when reachable
  type: dict
  sample: {observed: true, reconnected: true, restarted: true, outage_seconds: 2.4, attempts: 4,
           detail: server restarted and back after 2.4 s, 4 connection attempts}
problems:
  description: Every problem, each with its cause or the threshold and the fix; the module fails when there is one.
  returned: always
  type: list
  elements: str
  sample: ["sslmode=require does not check the server's certificate: set sslmode=verify-full in the client's service
           (pg_client_services)"]
summary:
  description: The report in lines, for people.
  returned: always
  type: list
  elements: str
  sample: ["app_rw@db1:5432/buffer: PASS", "connect (TCP+TLS+auth) ms p50/p95/p99: 9.1/12.4/13.0; TCP alone p50 0.2"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.errors import PgharborError
from ansible.module_utils.pgharbor.link.check import CheckSettings, Thresholds, check_connection
from ansible.module_utils.pgharbor.link.retry import RetryPolicy
from ansible.module_utils.pgharbor.pg.conninfo import connection_options, conninfo

RETRY_SPEC = {
    "base_seconds": {"type": "float", "default": 0.5},
    "cap_seconds": {"type": "float", "default": 8.0},
    "deadline_seconds": {"type": "float", "default": 60.0},
}
THRESHOLDS_SPEC = {
    "connect_p95_ms": {"type": "float"},
    "query_p95_ms": {"type": "float"},
    "min_upload_mb_s": {"type": "float"},
    "min_download_mb_s": {"type": "float"},
    "min_cert_days": {"type": "int", "default": 30},
    "require_verify_full": {"type": "bool", "default": True},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **connection_options("target"),
            "attempts": {"type": "int", "default": 10},
            "queries": {"type": "int", "default": 100},
            "throughput_mb": {"type": "int", "default": 16},
            "restart_test": {"type": "bool", "default": False},
            "restart_window": {"type": "int", "default": 120},
            "retry": {"type": "dict", "default": {}, "options": RETRY_SPEC},
            "thresholds": {"type": "dict", "default": {}, "options": THRESHOLDS_SPEC},
            "timeout": {"type": "int"},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        settings = CheckSettings(attempts=p["attempts"], queries=p["queries"], throughput_mb=p["throughput_mb"],
                                 restart_test=p["restart_test"], restart_window_seconds=p["restart_window"],
                                 retry=RetryPolicy(**p["retry"]), timeout_seconds=p["timeout"])
    except PgharborError as exc:
        module.fail_json(msg=str(exc))
    report = check_connection(conninfo(p, "target"), settings, Thresholds(**p["thresholds"]))
    result = {"changed": False, **report.as_dict(), "summary": report.summary()}
    if not report.passed:
        module.fail_json(msg=f"{report.target}: " + "; ".join(report.problems), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
