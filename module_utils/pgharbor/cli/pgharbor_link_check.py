"""pgharbor-link-check: the application's link, checked as the application
connects (its service, run as its OS user), written as gauges for
node_exporter: what the exporters role's timer runs every minute on an
application host. The same check as pg_conn_check and check_connection.yml,
lighter: no throughput test, fewer samples.

    pgharbor-link-check --service buffer --thresholds '{"query_p95_ms": 20}' --prometheus FILE

Exit 0 when the check passed, 1 when it found a problem (the gauges and the
output say which), 2 when it could not run."""

from __future__ import annotations

import argparse
import json
import sys

from ..common.gauges import exposition
from ..common.settings import ConfigError
from ..link.check import CheckSettings, Thresholds, check_connection
from ..link.gauges import link_gauges
from .command import add_prometheus_option, write_gauges


def thresholds_from(text: str) -> Thresholds:
    """check_connection_thresholds as JSON (the throughput limits are kept but unused: no throughput test
    here); an unknown key is an error that names it."""
    given = json.loads(text) if text else {}
    known = set(Thresholds.__dataclass_fields__)
    if set(given) - known:
        raise ConfigError(f"--thresholds: unknown {', '.join(sorted(set(given) - known))}; "
                          f"the link check knows {', '.join(sorted(known))}")
    return Thresholds(**given)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pgharbor-link-check", description=__doc__.split("\n\n")[0])
    p.add_argument("--service", required=True, help="the pg_service.conf service the application uses")
    p.add_argument("--thresholds", default="", help="check_connection_thresholds as JSON")
    p.add_argument("--attempts", type=int, default=5, help="connections timed")
    p.add_argument("--queries", type=int, default=20, help="SELECT 1 round trips timed")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    add_prometheus_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        thresholds = thresholds_from(args.thresholds)
        settings = CheckSettings(attempts=args.attempts, queries=args.queries, throughput_mb=0)
        report = check_connection(f"service={args.service}", settings, thresholds)
        if args.prometheus:
            write_gauges(args.prometheus, exposition(link_gauges(args.service, report, thresholds)))
    except (ConfigError, OSError, ValueError) as exc:
        print(f"pgharbor-link-check: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2, sort_keys=True) if args.json else "\n".join(report.summary()))
    return 0 if report.passed else 1
