"""Verify the base role on a real container: what pgharbor's modules need is
present and usable, not merely installed."""

import pytest

PACKAGES = ["python3-psycopg", "python3-boto3", "gpg", "zstd", "rsync", "jq"]


@pytest.mark.parametrize("name", PACKAGES)
def test_package_installed(host, name):
    assert host.package(name).is_installed, f"{name} is not installed"


def test_python_libraries_import(host):
    # The modules run with the system python3 on the managed host.
    out = host.check_output(
        "python3 -c 'import psycopg, boto3; print(psycopg.__version__, boto3.__version__)'"
    )
    psycopg_version, boto3_version = out.split()
    assert int(psycopg_version.split(".")[0]) == 3
    assert boto3_version


def test_zstd_round_trip(host):
    out = host.check_output("printf pgharbor | zstd -q -c | zstd -q -d -c")
    assert out == "pgharbor"


def test_gpg_has_aes256(host):
    # Backups are encrypted with AES-256; a gpg without it is useless here.
    assert "AES256" in host.check_output("gpg --version")


def test_unknown_package_is_absent(host):
    # Guards against a verify that would pass whatever the host holds.
    assert not host.package("pgharbor-no-such-package").is_installed
