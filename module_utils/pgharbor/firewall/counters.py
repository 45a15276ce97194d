"""The named counters of pgharbor's nftables table, read with `nft -j` (the
JSON form nft 1.0 writes), as metrics for node_exporter's textfile
collector. A counter starts again at 0 when the firewall role loads a new
ruleset; Prometheus's increase() and rate() allow for that."""

from __future__ import annotations

import json
import subprocess

from ..common.gauges import counter, labels
from ..errors import PgharborError

TABLE = ("inet", "pgharbor")


class FirewallError(PgharborError):
    pass


def read_counters(nft: str = "nft") -> dict[str, tuple[int, int]]:
    """Each named counter of the table: (packets, bytes)."""
    family, table = TABLE
    try:
        out = subprocess.run([nft, "-j", "list", "counters", "table", family, table], capture_output=True,
                             text=True, check=True, timeout=30).stdout
    except subprocess.CalledProcessError as exc:
        raise FirewallError(f"nft could not list the counters of table {family} {table}: {exc.stderr.strip()} "
                            "(is the firewall role applied on this host, and does this run as root?)") from exc
    return parse_counters(out)


def parse_counters(text: str) -> dict[str, tuple[int, int]]:
    try:
        items = json.loads(text)["nftables"]
    except (ValueError, KeyError, TypeError) as exc:
        raise FirewallError(f"nft -j answered what is not its JSON: {text[:200]!r}") from exc
    return {item["counter"]["name"]: (int(item["counter"]["packets"]), int(item["counter"]["bytes"]))
            for item in items if "counter" in item}


def counter_metrics(counters: dict[str, tuple[int, int]]) -> list[str]:
    out: list[str] = []
    counter(out, "pgharbor_firewall_packets_total", "Packets counted by a named counter of pgharbor's firewall "
            "(dropped: every packet it dropped) since its ruleset was loaded",
            [(labels(counter=name), packets) for name, (packets, _) in sorted(counters.items())])
    counter(out, "pgharbor_firewall_bytes_total", "Bytes counted by a named counter of pgharbor's firewall",
            [(labels(counter=name), size) for name, (_, size) in sorted(counters.items())])
    return out
