"""Build test certificates with cryptography: a CA, and leaves that are right
or wrong in exactly one way (expired, another key, missing names), so that
each check can be shown to catch its own problem."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.timezone.utc)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "test CA", days: int = 365, issuer=None):
    """A self-signed root, or an intermediate when issuer (a CA pair) is given."""
    key = new_key()
    issuer_cert, issuer_key = issuer or (None, key)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_cert.subject if issuer_cert else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0 if issuer else None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


def make_leaf(
    ca,
    cn: str = "db1",
    dns: tuple[str, ...] = ("db1",),
    ips: tuple[str, ...] = (),
    valid_from_days: int = -1,
    valid_days: int = 90,
    purpose: ExtendedKeyUsageOID = ExtendedKeyUsageOID.SERVER_AUTH,
    key=None,
    also: tuple[ExtendedKeyUsageOID, ...] = (),
):
    ca_cert, ca_key = ca
    key = key or new_key()
    names = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + dt.timedelta(days=valid_from_days))
        .not_valid_after(NOW + dt.timedelta(days=valid_from_days + valid_days))
        .add_extension(x509.ExtendedKeyUsage([purpose, *also]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def write_cert(path: Path, cert: x509.Certificate) -> str:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def write_key(path: Path, key) -> str:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)
    return str(path)
