"""Check that a certificate, its key and its CA belong together and cover a host.

Operators bring their own certificates in production; before anything is
deployed we want every problem at once, each naming the file and the fix,
rather than a TLS handshake failing later on a client.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class CheckResult:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    subject: str = ""
    issuer: str = ""
    not_after: str = ""
    days_left: int = 0
    dns_names: list[str] = field(default_factory=list)
    ip_addresses: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read(path: str, what: str, problems: list[str]) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        problems.append(f"{what} {path} cannot be read: {exc.strerror}")
        return None


def _load_certs(data: bytes, path: str, what: str, problems: list[str]) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        problems.append(f"{what} {path} holds no PEM certificate")
        return []


def _public_bytes(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _chain_to_root(leaf: x509.Certificate, bundle: list[x509.Certificate]) -> bool:
    """True when the bundle (CA file: root plus any intermediates) signs the leaf up to a self-signed root."""
    current = leaf
    for _ in range(len(bundle) + 1):
        issuer = next((c for c in bundle if _issued_by(current, c)), None)
        if issuer is None:
            return False
        if issuer.issuer == issuer.subject:
            return True
        current = issuer
    return False


def _dns_matches(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def _name(value: x509.Name) -> str:
    return value.rfc4514_string()


# What a certificate authenticates, and the extendedKeyUsage each needs. A
# peer is a member of a cluster (etcd): a server to the others, and their
# client when it connects to them.
PURPOSES = {
    "server": [("server", ExtendedKeyUsageOID.SERVER_AUTH)],
    "client": [("client", ExtendedKeyUsageOID.CLIENT_AUTH)],
    "peer": [("server", ExtendedKeyUsageOID.SERVER_AUTH), ("client", ExtendedKeyUsageOID.CLIENT_AUTH)],
}


def check_certificate(
    cert_path: str,
    ca_path: str,
    key_path: str | None = None,
    dns_names: list[str] | None = None,
    ip_addresses: list[str] | None = None,
    common_name: str | None = None,
    purpose: str = "server",
    warn_days: int = 30,
    now: dt.datetime | None = None,
) -> CheckResult:
    """Collect every problem with one certificate; nothing is raised for bad input."""
    result = CheckResult()
    problems = result.problems
    now = now or dt.datetime.now(dt.timezone.utc)

    cert_data = _read(cert_path, "certificate", problems)
    ca_data = _read(ca_path, "CA certificate", problems)
    key_data = _read(key_path, "private key", problems) if key_path else None
    certs = _load_certs(cert_data, cert_path, "certificate", problems) if cert_data else []
    bundle = _load_certs(ca_data, ca_path, "CA certificate", problems) if ca_data else []
    if not certs:
        return result
    # A certificate file may carry its intermediates after the leaf.
    leaf, bundle = certs[0], bundle + certs[1:]

    result.subject, result.issuer = _name(leaf.subject), _name(leaf.issuer)
    not_after = leaf.not_valid_after_utc
    result.not_after = not_after.isoformat()
    result.days_left = (not_after - now).days
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        result.dns_names = san.get_values_for_type(x509.DNSName)
        result.ip_addresses = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        pass

    if key_data is not None:
        try:
            key = serialization.load_pem_private_key(key_data, password=None)
        except (ValueError, TypeError):
            problems.append(f"private key {key_path} is not an unencrypted PEM private key")
        else:
            if _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):
                problems.append(
                    f"private key {key_path} does not match certificate {cert_path}: "
                    "supply the key the certificate was issued for"
                )

    if bundle and not _chain_to_root(leaf, bundle):
        problems.append(
            f"certificate {cert_path} (issuer {result.issuer}) does not chain to a root in {ca_path}: "
            "put the issuing CA (and any intermediates) in the CA file"
        )

    if now < leaf.not_valid_before_utc:
        problems.append(f"certificate {cert_path} is not valid before {leaf.not_valid_before_utc.isoformat()}")
    if not_after <= now:
        problems.append(f"certificate {cert_path} expired on {result.not_after}: issue a new one")
    elif result.days_left < warn_days:
        result.warnings.append(
            f"certificate {cert_path} expires in {result.days_left} days ({result.not_after}); renew it soon"
        )
    for ca in bundle:
        if ca.not_valid_after_utc <= now:
            problems.append(f"CA certificate {_name(ca.subject)} in {ca_path} expired on "
                            f"{ca.not_valid_after_utc.isoformat()}")

    for name in dns_names or []:
        if not any(_dns_matches(pattern, name) for pattern in result.dns_names):
            problems.append(
                f"certificate {cert_path} does not cover DNS name {name} "
                f"(subjectAltName DNS: {', '.join(result.dns_names) or 'none'}): reissue it with that name"
            )
    cert_ips = {ipaddress.ip_address(a) for a in result.ip_addresses}
    for address in ip_addresses or []:
        if ipaddress.ip_address(address) not in cert_ips:
            problems.append(
                f"certificate {cert_path} does not cover IP address {address} "
                f"(subjectAltName IP: {', '.join(result.ip_addresses) or 'none'}): reissue it with that address"
            )

    if common_name is not None:
        cns = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if common_name not in cns:
            found = ", ".join(map(str, cns)) or "none"
            problems.append(f"certificate {cert_path} has CN {found}, expected {common_name}")

    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    missing = [name for name, oid in PURPOSES[purpose] if usages is not None and oid not in usages]
    if missing:
        problems.append(f"certificate {cert_path} is not allowed for {' and '.join(missing)} authentication "
                        "(extendedKeyUsage): reissue it with " + ", ".join(f"{n}Auth" for n in missing))
    return result
