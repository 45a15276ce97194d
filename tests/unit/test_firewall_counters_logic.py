"""Reading nft's JSON and writing the counters, without nft."""

from __future__ import annotations

import pytest

from pgharbor.firewall.counters import FirewallError, counter_metrics, parse_counters

# What nft 1.0.6 (Debian 12) printed for `nft -j list counters table inet pgharbor` on the lab's db1.
NFT = ('{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, '
       '{"counter": {"family": "inet", "name": "dropped", "table": "pgharbor", "handle": 2, "packets": 15, '
       '"bytes": 900}}]}')


def test_each_named_counter_is_read_with_its_packets_and_bytes():
    assert parse_counters(NFT) == {"dropped": (15, 900)}


def test_the_counters_are_written_as_prometheus_counters():
    assert counter_metrics({"dropped": (15, 900)}) == [
        "# HELP pgharbor_firewall_packets_total Packets counted by a named counter of pgharbor's firewall "
        "(dropped: every packet it dropped) since its ruleset was loaded",
        "# TYPE pgharbor_firewall_packets_total counter",
        'pgharbor_firewall_packets_total{counter="dropped"} 15',
        "# HELP pgharbor_firewall_bytes_total Bytes counted by a named counter of pgharbor's firewall",
        "# TYPE pgharbor_firewall_bytes_total counter",
        'pgharbor_firewall_bytes_total{counter="dropped"} 900',
    ]


def test_a_table_without_counters_writes_nothing():
    assert counter_metrics(parse_counters('{"nftables": [{"metainfo": {}}]}')) == []


@pytest.mark.parametrize("text", ["", "Error: No such file or directory", '{"other": []}'])
def test_what_is_not_nfts_json_is_an_error(text):
    with pytest.raises(FirewallError, match="nft -j answered what is not its JSON"):
        parse_counters(text)
