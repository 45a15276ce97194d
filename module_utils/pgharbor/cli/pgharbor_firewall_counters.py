"""pgharbor-firewall-counters: the counters of pgharbor's firewall (the
packets it dropped) as metrics for node_exporter; what the exporters
role's timer runs, as root (nft needs it), on a firewalled host.

    pgharbor-firewall-counters --prometheus FILE

Exit 0 when the counters were read, 2 when they could not be."""

from __future__ import annotations

import argparse
import sys

from ..common.gauges import exposition
from ..errors import PgharborError
from ..firewall.counters import counter_metrics, read_counters
from .command import add_prometheus_option, write_gauges


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgharbor-firewall-counters", description=__doc__.split("\n\n")[0])
    add_prometheus_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        counters = read_counters()
        if args.prometheus:
            write_gauges(args.prometheus, exposition(counter_metrics(counters)))
    except (PgharborError, OSError) as exc:
        print(f"pgharbor-firewall-counters: {exc}", file=sys.stderr)
        return 2
    for name, (packets, size) in sorted(counters.items()):
        print(f"{name}: {packets} packets, {size} bytes")
    return 0
