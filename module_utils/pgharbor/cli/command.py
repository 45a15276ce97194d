"""One body for pgharbor's command lines: read the settings, check the
required key, run the command; a failure is one line on stderr and exit 2.
And what their status commands share: --prometheus FILE."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..common.atomicfile import replace_file
from ..common.gauges import exposition, gauge, labels
from ..common.settings import ConfigError, load_config
from ..errors import PgharborError
from ..ha.member import Acting

Command = Callable[[dict, argparse.Namespace], int]


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None, commands: dict[str, Command],
                required: tuple[str, str]) -> int:
    """A command line's body: read --config, check that its required key
    (key, the role variable that sets it) is there, run the command; a
    failure pgharbor explains, an OS error or a bad value in the settings
    file (ValueError: int("x")) is one line on stderr and exit 2."""
    args = parser.parse_args(argv)
    key, variable = required
    try:
        config = load_config(args.config)
        if not config.get(key):
            raise ConfigError(f"{args.config}: missing setting {key} ({variable})")
        return commands[args.command](config, args)
    except (PgharborError, OSError, ValueError) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2


def add_prometheus_option(status: argparse.ArgumentParser) -> None:
    """status --prometheus FILE: the same report as gauges, for node_exporter's textfile collector."""
    status.add_argument("--prometheus", metavar="FILE", type=Path,
                        help="also write the report as gauges to FILE (replaced whole, readable by all)")


def acting_gauge(name: str, text: str, host: str, acting: bool) -> list[str]:
    """Whether this server does the layer's work (in a cluster, one member does): the alerts on the
    layer leave out the members that do not."""
    out: list[str] = []
    gauge(out, name, text, [(labels(host=host), int(acting))])
    return out


def status_elsewhere(probe: Callable[[], Acting], args: argparse.Namespace, gauges: Callable[[bool], list[str]],
                     what: str) -> int | None:
    """A status command on a member that does not do the layer's work: only the acting gauge, a line
    saying who does, exit 0. None where this server does the work, or does not answer (then its layer
    is reported as it is; the server's own alerts say it is down)."""
    here = probe()
    if here.acting:
        return None
    if args.prometheus:
        write_gauges(args.prometheus, exposition(gauges(False)))
    print(json.dumps({"acting": False, "role": here.role, "detail": here.reason}) if args.json
          else f"{what}: {here.reason}")
    return 0


def write_gauges(path: Path, gauges: str) -> None:
    # node_exporter reads the file at any moment: it sees the old one or the new one, never half.
    replace_file(path, gauges, mode=0o644, durable=False)
