"""Human units in config files: durations ("90s", "15m", "1h30m") and sizes ("10MB")."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_DURATION_WHOLE = re.compile(r"(?:\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w))+\s*")
_DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_duration(text: str | int | float) -> timedelta:
    """Parse "90s", "15m", "1h30m", "2d" (a bare number means seconds).

    Raises ValueError with a message fit to show a user.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 90s, 15m or 1h, got {text!r}")
    if isinstance(text, int | float):
        return timedelta(seconds=text)
    stripped = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        return timedelta(seconds=float(stripped))
    if not _DURATION_WHOLE.fullmatch(stripped):
        raise ValueError(f"expected a duration like 90s, 15m, 1h or 1h30m, got {text!r}")
    total = timedelta()
    for number, unit in _DURATION_PART.findall(stripped):
        total += float(number) * _DURATION_UNITS[unit]
    return total


def parse_size(text: str | int) -> int:
    """Parse "10MB", "512KiB", "1000" (bytes). Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError(f"expected a size like 10MB or 512KB, got {text!r}")
    if isinstance(text, int):
        return text
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"expected a size like 10MB or 512KB, got {text!r}")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[(unit or "b").lower()])


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration for display: 5400s -> "1h30m"."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
