#!/usr/bin/python
"""Ansible wrapper around pgharbor.link.certificates."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tls_cert_check
short_description: Check that a certificate, its key and its CA belong together and cover a host
description:
  - Reads a PEM certificate, optionally its private key, and a CA file (a root and any
    intermediates), and reports every problem at once, each naming the file and the fix.
  - "Checks: the key matches the certificate; the certificate chains to a self-signed root in
    the CA file; it is valid now and no CA in the file has expired; the subjectAltName covers
    every given DNS name and IP address; the common name, when given, is the expected one; the
    extended key usage, when present, allows the purpose."
  - Fails when a problem is found; a certificate that expires within O(warn_days) only warns.
  - Reads files only; nothing is changed, so check mode runs the same checks.
version_added: "0.1.0"
author: pgharbor
extends_documentation_fragment:
  - pgharbor_attributes
options:
  cert:
    description: Path of the PEM certificate (leaf first, intermediates may follow).
    type: path
    required: true
  ca:
    description: Path of the PEM CA file the certificate must chain to.
    type: path
    required: true
  key:
    description: Path of the unencrypted PEM private key that must match O(cert).
    type: path
  dns_names:
    description: DNS names the subjectAltName must cover (wildcards match one label).
    type: list
    elements: str
    default: []
  ip_addresses:
    description: IP addresses the subjectAltName must cover.
    type: list
    elements: str
    default: []
  common_name:
    description: The subject common name the certificate must carry (a client certificate's database user).
    type: str
  purpose:
    description:
      - What the certificate authenticates; checked against its extended key usage.
      - C(peer) is a member of a cluster (etcd), a server to the others and their client, so both usages.
    type: str
    choices: [server, client, peer]
    default: server
  warn_days:
    description: Warn when the certificate expires within this many days.
    type: int
    default: 30
requirements:
  - cryptography >= 42 (where the module runs, usually the controller)
"""

EXAMPLES = r"""
- name: Check the operator's server certificate before deploying it
  tls_cert_check:
    cert: /secure/pki/db1.crt
    key: /secure/pki/db1.key
    ca: /secure/pki/ca.crt
    dns_names: [db1.example.com]
    ip_addresses: [192.0.2.11]
    warn_days: 30
  delegate_to: localhost

- name: Check a client certificate used for cert authentication as user backup
  tls_cert_check:
    cert: /secure/pki/clients/backup.crt
    key: /secure/pki/clients/backup.key
    ca: /secure/pki/ca.crt
    common_name: backup
    purpose: client
  delegate_to: localhost
"""

RETURN = r"""
subject:
  description: Subject of the certificate (RFC 4514).
  returned: when the certificate could be read
  type: str
  sample: CN=db1
issuer:
  description: Issuer of the certificate (RFC 4514).
  returned: when the certificate could be read
  type: str
  sample: CN=pgharbor lab CA
not_after:
  description: End of validity, ISO 8601 in UTC.
  returned: when the certificate could be read
  type: str
  sample: "2027-12-24T10:00:00+00:00"
days_left:
  description: Whole days until the certificate expires (negative when expired).
  returned: when the certificate could be read
  type: int
  sample: 396
dns_names:
  description: DNS names in the subjectAltName.
  returned: when the certificate could be read
  type: list
  elements: str
  sample: [db1, pgharbor-db1]
ip_addresses:
  description: IP addresses in the subjectAltName.
  returned: when the certificate could be read
  type: list
  elements: str
  sample: [10.89.42.11]
problems:
  description: Every problem found, each naming the file and the fix; the module fails when this is not empty.
  returned: always
  type: list
  elements: str
  sample: ["private key /secure/pki/db1.key does not match certificate /secure/pki/db1.crt: supply the key the
            certificate was issued for"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.pgharbor.link.certificates import check_certificate


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "cert": {"type": "path", "required": True},
            "ca": {"type": "path", "required": True},
            "key": {"type": "path", "no_log": False},
            "dns_names": {"type": "list", "elements": "str", "default": []},
            "ip_addresses": {"type": "list", "elements": "str", "default": []},
            "common_name": {"type": "str"},
            "purpose": {"type": "str", "choices": ["server", "client", "peer"], "default": "server"},
            "warn_days": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    p = module.params
    result = check_certificate(
        p["cert"], p["ca"], key_path=p["key"], dns_names=p["dns_names"], ip_addresses=p["ip_addresses"],
        common_name=p["common_name"], purpose=p["purpose"], warn_days=p["warn_days"],
    )
    for warning in result.warnings:
        module.warn(warning)
    facts = {
        "changed": False,
        "problems": result.problems,
        "subject": result.subject,
        "issuer": result.issuer,
        "not_after": result.not_after,
        "days_left": result.days_left,
        "dns_names": result.dns_names,
        "ip_addresses": result.ip_addresses,
    }
    if result.problems:
        module.fail_json(msg="; ".join(result.problems), **facts)
    module.exit_json(**facts)


if __name__ == "__main__":
    main()
