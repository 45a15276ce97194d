"""The firewall role's address filter: families split, notation nft accepts,
and a typo named with its setting."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "roles/firewall/filter_plugins/nft_addresses.py"
spec = importlib.util.spec_from_file_location("nft_addresses", PLUGIN)
nft = importlib.util.module_from_spec(spec)
spec.loader.exec_module(nft)

MIXED = ["192.0.2.10", "198.51.100.0/24", "2001:db8::/32", "2001:db8:1::5/128", "192.0.2.10/32"]


def test_ipv4_entries_without_repeats_single_hosts_without_prefix():
    assert nft.nft_addresses(MIXED, 4) == ["192.0.2.10", "198.51.100.0/24"]


def test_ipv6_entries():
    assert nft.nft_addresses(MIXED, 6) == ["2001:db8::/32", "2001:db8:1::5"]


@pytest.mark.parametrize("bad", ["10.0.0.300", "db1.example.com", "10.1.2.3/8", "2001:db8::1/32", ""])
def test_a_bad_entry_names_the_setting(bad):
    with pytest.raises(ValueError, match=r"^firewall_admin_networks: .* is not an IP address or network"):
        nft.nft_addresses(["192.0.2.1", bad], 4, "firewall_admin_networks")


def test_family_must_be_4_or_6():
    with pytest.raises(ValueError, match="family must be 4 or 6"):
        nft.nft_addresses(MIXED, 5)


@pytest.mark.parametrize(
    ("address", "inside"),
    [("198.51.100.7", True), ("192.0.2.10", True), ("192.0.2.11", False), ("2001:db8:ffff::1", True),
     ("2001:db9::1", False)],
)
def test_ip_in_networks(address, inside):
    assert nft.ip_in_networks(address, MIXED) is inside
