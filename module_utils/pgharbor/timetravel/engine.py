"""pgBackRest as pgharbor drives it: one stanza, one configuration file
(rendered by the pg_timetravel role), every command's failure turned into a
message that names the command and pgBackRest's own words.

pgBackRest redacts the passphrases and keys in what it prints, so its
stderr is safe to pass on; pgharbor never puts a secret on a command line:
they live in the configuration file, readable by the postgres user alone."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PgharborError


class PgbackrestError(PgharborError, RuntimeError):
    pass


@dataclass(frozen=True)
class Pgbackrest:
    config: str
    stanza: str
    # Put before the command: the tests run it as the postgres OS user this way; a
    # module already runs as that user (become_user).
    prefix: tuple[str, ...] = ()
    binary: str = "pgbackrest"
    # Options before every command's own, over the configuration file's (see at).
    overrides: tuple[str, ...] = ()

    def at(self, repo: int, path: Path) -> Pgbackrest:
        """The same, with one repository read from a directory instead of where the configuration
        puts it: a snapshot fetched from tier 2, or tier 3 rebuilt as of a time (asof.py). Its
        passphrase stays the configuration's, so the directory must hold a copy of that repository."""
        return dataclasses.replace(self, overrides=(*self.overrides, f"--repo{repo}-type=posix",
                                                    f"--repo{repo}-path={path}"))

    def global_options(self) -> list[str]:
        return [f"--config={self.config}", f"--stanza={self.stanza}", *self.overrides]

    def argv(self, command: str, *options: str, args: tuple[str, ...] = ()) -> list[str]:
        return [*self.prefix, self.binary, *self.global_options(), "--log-level-console=warn",
                "--log-level-stderr=off", *options, command, *args]

    def run(self, command: str, *options: str, args: tuple[str, ...] = (), timeout: float | None = None) -> str:
        argv = self.argv(command, *options, args=args)
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        except FileNotFoundError:
            raise PgbackrestError(f"{self.binary} is not installed: apply the pg_timetravel role "
                                  "(it installs Debian's pgbackrest package)") from None
        except subprocess.TimeoutExpired:
            raise PgbackrestError(f"pgbackrest {command} did not finish within {timeout:.0f} s") from None
        if result.returncode != 0:
            said = (result.stderr.strip() or result.stdout.strip()).splitlines()[-5:]
            raise PgbackrestError(f"pgbackrest {command} {' '.join(options)} failed (exit {result.returncode}): "
                                  + " / ".join(said))
        return result.stdout

    def info(self) -> dict[str, Any]:
        """The stanza's entry of `pgbackrest info`, every repository together."""
        stanzas = json.loads(self.run("info", "--output=json"))
        for entry in stanzas:
            if entry.get("name") == self.stanza:
                return entry
        raise PgbackrestError(f"pgbackrest knows no stanza {self.stanza!r} in {self.config}: run the "
                              "pg_timetravel role, which creates it")

    def files(self, repo: int, path: str) -> dict[str, dict[str, Any]]:
        """Every file under path in one repository, with its size and time (`repo-ls`)."""
        listing = json.loads(self.run("repo-ls", f"--repo={repo}", "--output=json", "--recurse", args=(path,)))
        return {name: entry for name, entry in listing.items() if entry.get("type") == "file"}
