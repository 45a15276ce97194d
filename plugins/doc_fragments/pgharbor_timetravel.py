"""The option every time-travel module shares: the pg_timetravel role's
settings file, which names the stanza and pgBackRest's configuration."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  config:
    description:
      - The settings file the pg_timetravel role writes (the stanza, pgBackRest's configuration); the same file the
        command C(pgharbor-timetravel) reads.
    type: path
    default: /etc/pgharbor/timetravel.json
"""
