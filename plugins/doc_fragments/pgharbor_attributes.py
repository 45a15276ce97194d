"""The attributes every pgharbor module shares: check mode is honoured (a
module that would change something says so and does nothing), no diff."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""
