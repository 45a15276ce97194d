"""check_certificate finds each kind of problem on its own and passes a good set."""

from __future__ import annotations

from pathlib import Path

import pytest
from certs import make_ca, make_leaf, new_key, write_cert, write_key
from cryptography.x509.oid import ExtendedKeyUsageOID

from pgharbor.link.certificates import check_certificate


@pytest.fixture
def ca(tmp_path):
    ca = make_ca()
    write_cert(tmp_path / "ca.crt", ca[0])
    return ca


def files(tmp_path, leaf, key=None):
    cert = write_cert(tmp_path / "leaf.crt", leaf[0])
    key = write_key(tmp_path / "leaf.key", key or leaf[1])
    return cert, key, str(tmp_path / "ca.crt")


def test_good_server_certificate_passes(tmp_path, ca):
    cert, key, ca_file = files(tmp_path, make_leaf(ca, dns=("db1", "db1.example"), ips=("10.0.0.5",)))
    result = check_certificate(cert, ca_file, key, dns_names=["db1.example"], ip_addresses=["10.0.0.5"])
    assert result.ok, result.problems
    assert result.dns_names == ["db1", "db1.example"]
    assert result.ip_addresses == ["10.0.0.5"]
    assert 88 <= result.days_left <= 90
    assert not result.warnings


def test_key_of_another_certificate_is_caught(tmp_path, ca):
    cert, key, ca_file = files(tmp_path, make_leaf(ca), key=new_key())
    result = check_certificate(cert, ca_file, key)
    assert len(result.problems) == 1
    assert "does not match certificate" in result.problems[0]


def test_certificate_from_another_ca_is_caught(tmp_path, ca):
    cert, key, ca_file = files(tmp_path, make_leaf(make_ca("other CA")))
    result = check_certificate(cert, ca_file, key)
    assert len(result.problems) == 1
    assert "does not chain to a root" in result.problems[0] and "issuer CN=other CA" in result.problems[0]


def test_chain_through_an_intermediate_in_the_ca_file(tmp_path):
    root = make_ca("root")
    intermediate = make_ca("intermediate", issuer=root)
    cert = write_cert(tmp_path / "leaf.crt", make_leaf(intermediate)[0])
    bundle = tmp_path / "bundle.crt"
    bundle.write_bytes(
        Path(write_cert(tmp_path / "i.crt", intermediate[0])).read_bytes()
        + Path(write_cert(tmp_path / "r.crt", root[0])).read_bytes()
    )
    assert check_certificate(cert, str(bundle)).ok
    # Without the intermediate, the same leaf does not chain.
    assert not check_certificate(cert, str(tmp_path / "r.crt")).ok


def test_expired_certificate_is_caught(tmp_path, ca):
    cert, key, ca_file = files(tmp_path, make_leaf(ca, valid_from_days=-30, valid_days=10))
    result = check_certificate(cert, ca_file, key)
    assert len(result.problems) == 1
    assert "expired on" in result.problems[0]


def test_not_yet_valid_certificate_is_caught(tmp_path, ca):
    cert, key, ca_file = files(tmp_path, make_leaf(ca, valid_from_days=2))
    result = check_certificate(cert, ca_file, key)
    assert [p for p in result.problems if "not valid before" in p]


def test_expiry_within_the_warning_window_warns(tmp_path, ca):
    cert, key, ca_file = files(tmp_path, make_leaf(ca, valid_days=11))
    result = check_certificate(cert, ca_file, key, warn_days=30)
    assert result.ok
    assert len(result.warnings) == 1 and "expires in" in result.warnings[0]
    assert not check_certificate(cert, ca_file, key, warn_days=5).warnings


def test_names_not_covered_are_listed(tmp_path, ca):
    cert, key, ca_file = files(tmp_path, make_leaf(ca, dns=("db1",), ips=("10.0.0.5",)))
    result = check_certificate(cert, ca_file, key, dns_names=["db1", "db2"], ip_addresses=["10.0.0.6"])
    assert len(result.problems) == 2
    assert "does not cover DNS name db2" in result.problems[0]
    assert "does not cover IP address 10.0.0.6" in result.problems[1]


def test_wildcard_covers_one_label_only(tmp_path, ca):
    cert, key, ca_file = files(tmp_path, make_leaf(ca, dns=("*.db.example",)))
    assert check_certificate(cert, ca_file, key, dns_names=["a.db.example"]).ok
    assert not check_certificate(cert, ca_file, key, dns_names=["a.b.db.example"]).ok
    assert not check_certificate(cert, ca_file, key, dns_names=["db.example"]).ok


def test_client_certificate_common_name_and_usage(tmp_path, ca):
    leaf = make_leaf(ca, cn="app_rw", dns=(), purpose=ExtendedKeyUsageOID.CLIENT_AUTH)
    cert, key, ca_file = files(tmp_path, leaf)
    assert check_certificate(cert, ca_file, key, common_name="app_rw", purpose="client").ok
    wrong = check_certificate(cert, ca_file, key, common_name="backup", purpose="server")
    assert len(wrong.problems) == 2
    assert "expected backup" in wrong.problems[0]
    assert "not allowed for server authentication" in wrong.problems[1]


def test_a_peer_certificate_needs_both_usages(tmp_path, ca):
    server_only, key, ca_file = files(tmp_path, make_leaf(ca))
    problems = check_certificate(server_only, ca_file, key, dns_names=["db1"], purpose="peer").problems
    assert problems == [f"certificate {server_only} is not allowed for client authentication (extendedKeyUsage): "
                        "reissue it with clientAuth"]
    both = make_leaf(ca, also=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    cert, key, ca_file = files(tmp_path, both)
    assert check_certificate(cert, ca_file, key, dns_names=["db1"], purpose="peer").ok
    assert check_certificate(cert, ca_file, key, dns_names=["db1"], purpose="server").ok


def test_unreadable_and_garbage_files_are_reported_not_raised(tmp_path, ca):
    (tmp_path / "garbage.crt").write_text("not a certificate")
    result = check_certificate(str(tmp_path / "garbage.crt"), str(tmp_path / "missing.crt"))
    assert len(result.problems) == 2
    assert "cannot be read" in result.problems[0]
    assert "holds no PEM certificate" in result.problems[1]
