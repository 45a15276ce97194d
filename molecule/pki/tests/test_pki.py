"""What the pki role made on the controller, and production mode refusing bad
files with a message that names the problem."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from certs import make_ca, make_leaf, new_key, write_cert, write_key
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PKI = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "pki"
HOST = "pki-db1"


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_private_and_certificates_readable():
    assert mode(PKI) == 0o700
    for key in (PKI / "ca.key", PKI / f"{HOST}.key", PKI / "clients" / "app.key"):
        assert mode(key) == 0o600, key
    for cert in (PKI / "ca.crt", PKI / f"{HOST}.crt", PKI / "clients" / "backup.crt"):
        assert mode(cert) == 0o644, cert


def test_server_certificate_names_and_issuer():
    ca, server = load(PKI / "ca.crt"), load(PKI / f"{HOST}.crt")
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOST, "db1.example.test"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.11"]
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_client_certificates_carry_the_database_user():
    ca = load(PKI / "ca.crt")
    for name, user in (("app", "app_rw"), ("backup", "backup")):
        cert = load(PKI / "clients" / f"{name}.crt")
        cert.verify_directly_issued_by(ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == user
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_the_ca_key_never_reaches_the_host(host):
    secret_line = (PKI / "ca.key").read_text().splitlines()[1]
    found = host.run("grep -rlsF -e %s /etc /root /var /tmp /home", secret_line)
    assert found.rc == 1, found.stdout  # 1: searched everything, found nothing


def test_validate_mode_accepts_the_generated_files(run_playbook):
    result = run_playbook("validate.yml", extra_vars={"pki_dir": str(PKI)})
    assert result.returncode == 0, result.stdout
    assert "changed=0" in result.stdout


@pytest.fixture
def operator_files(tmp_path):
    """A CA the operator trusts, and a helper writing a server certificate set."""
    ca = make_ca("operator CA")
    ca_file = write_cert(tmp_path / "ca.crt", ca[0])

    def server_set(leaf, key=None) -> dict:
        return {
            "pki_ca_cert": ca_file,
            "pki_server_cert": write_cert(tmp_path / "server.crt", leaf[0]),
            "pki_server_key": write_key(tmp_path / "server.key", key or leaf[1]),
            "pki_clients": [],
        }

    return ca, server_set


def test_validate_mode_accepts_a_good_operator_certificate(run_playbook, operator_files):
    ca, server_set = operator_files
    files = server_set(make_leaf(ca, cn=HOST, dns=(HOST, "db1.example.test"), ips=("192.0.2.11",)))
    result = run_playbook("validate.yml", extra_vars=files)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("mismatched key", "does not match certificate"),
        ("expired", "expired on"),
        ("SAN missing the host", "does not cover DNS name db1.example.test"),
        ("SAN missing the address", "does not cover IP address 192.0.2.11"),
        ("other CA", "does not chain to a root"),
    ],
)
def test_validate_mode_refuses_bad_files(run_playbook, operator_files, case, expected):
    ca, server_set = operator_files
    good = {"cn": HOST, "dns": (HOST, "db1.example.test"), "ips": ("192.0.2.11",)}
    if case == "mismatched key":
        files = server_set(make_leaf(ca, **good), key=new_key())
    elif case == "expired":
        files = server_set(make_leaf(ca, valid_from_days=-100, valid_days=30, **good))
    elif case == "SAN missing the host":
        files = server_set(make_leaf(ca, cn=HOST, dns=(HOST,), ips=("192.0.2.11",)))
    elif case == "SAN missing the address":
        files = server_set(make_leaf(ca, cn=HOST, dns=(HOST, "db1.example.test")))
    else:
        files = server_set(make_leaf(make_ca("someone else's CA"), **good))
    result = run_playbook("validate.yml", extra_vars=files)
    assert result.returncode != 0, f"{case}: accepted\n{result.stdout}"
    assert expected in result.stdout, result.stdout


def test_validate_mode_warns_before_expiry(run_playbook, operator_files):
    ca, server_set = operator_files
    files = server_set(make_leaf(ca, cn=HOST, dns=(HOST, "db1.example.test"), ips=("192.0.2.11",), valid_days=10))
    result = run_playbook("validate.yml", extra_vars=files | {"pki_expiry_warning_days": 30})
    assert result.returncode == 0, result.stdout
    assert "expires in" in result.stdout + result.stderr


def test_validate_mode_refuses_a_client_certificate_for_another_user(run_playbook, operator_files, tmp_path):
    ca, server_set = operator_files
    files = server_set(make_leaf(ca, cn=HOST, dns=(HOST, "db1.example.test"), ips=("192.0.2.11",)))
    client = make_leaf(ca, cn="app_rw", dns=(), purpose=ExtendedKeyUsageOID.CLIENT_AUTH)
    files["pki_clients"] = [{
        "name": "backup", "common_name": "backup",
        "cert": write_cert(tmp_path / "backup.crt", client[0]),
        "key": write_key(tmp_path / "backup.key", client[1]),
    }]
    result = run_playbook("validate.yml", extra_vars=files)
    assert result.returncode != 0
    assert "has CN app_rw, expected backup" in result.stdout
