"""Settings given as a mapping (a JSON file, an inventory dict) for a
dataclass: a misspelt key is named instead of silently ignored."""

from __future__ import annotations


def unknown_keys(cls: type, values: dict, setting: str) -> str | None:
    """A message naming the keys cls does not have, or None."""
    known = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = sorted(set(values) - known)
    if not unknown:
        return None
    return f"{setting}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
