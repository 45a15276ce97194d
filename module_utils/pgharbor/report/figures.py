"""Figures as a person reads them, the same in the HTML page and in the
plain-text summary: durations, sizes, moments (UTC)."""

from __future__ import annotations

from datetime import datetime, timezone


def duration(seconds: float | None) -> str:
    """850 ms, 12.3 s, 1.6 min, 14 min, 2.5 h, 3.0 d."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 600:
        return f"{seconds / 60:.1f} min"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def size(count: float | None) -> str:
    """Bytes in powers of 1024: 512 B, 3.4 MiB."""
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def signed_size(count: float) -> str:
    return ("+" if count >= 0 else "-") + size(abs(count))


def moment(timestamp: float | None) -> str:
    """2026-12-07 14:05 UTC."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def clock(timestamp: float) -> str:
    """14:05, for a moment within the report's day."""
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%H:%M")


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
