"""One body for both command lines: read the settings, check the required
key, run the command; a failure is one line on stderr and exit 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..common.settings import ConfigError, load_config
from ..errors import PgharborError

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
