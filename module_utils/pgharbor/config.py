"""Reading the JSON settings files the roles write (the backup agent's,
the backup server's): a missing or broken file is named with the fix."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path


class ConfigError(ValueError):
    pass


def load_config(path: str | Path) -> dict:
    """Settings as a role writes them (JSON; each key is the role variable
    without the role's prefix)."""
    try:
        config = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"no configuration at {path}: run the role that writes it (pg_backup, backup_server), "
                          "or pass --config") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    return config


Command = Callable[[dict, argparse.Namespace], int]


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None, commands: dict[str, Command],
                required: tuple[str, str], errors: tuple[type[BaseException], ...]) -> int:
    """A command line's body: read --config, check that its required key
    (key, the role variable that sets it) is there, run the command; a
    failure of the kinds in errors is one line on stderr and exit 2."""
    args = parser.parse_args(argv)
    key, variable = required
    try:
        config = load_config(args.config)
        if not config.get(key):
            raise ConfigError(f"{args.config}: missing setting {key} ({variable})")
        return commands[args.command](config, args)
    except (ConfigError, OSError, ValueError, *errors) as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
