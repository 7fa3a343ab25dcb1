from __future__ import annotations

from datetime import timedelta

import pytest

from watcher.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("250ms", timedelta(milliseconds=250)),
        ("1.5h", timedelta(minutes=90)),
        ("45", timedelta(seconds=45)),
        (30, timedelta(seconds=30)),
        (" 10 m ", timedelta(minutes=10)),
    ],
)
def test_parse_duration(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "m", "15 minutes", "1y", "-5m", "1h-", "abc", True])
def test_parse_duration_rejects(text: str | bool) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10MB", 10_000_000),
        ("512KiB", 524_288),
        ("1000", 1000),
        (2048, 2048),
        ("1.5 mb", 1_500_000),
    ],
)
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "10 potatoes", "-1MB"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


@pytest.mark.parametrize("seconds", [0, 1, 59, 60, 61, 3600, 5400, 86400 + 3661])
def test_format_duration_round_trips(seconds: int) -> None:
    value = timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value
