from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.pacing import (
    DailyDigest,
    IntervalDigest,
    QuietHours,
    RateLimit,
    digest_due,
    parse_digest,
    parse_quiet_hours,
    parse_rate_limit,
    quiet_until,
    rate_limited_until,
)

KYIV = ZoneInfo("Europe/Kyiv")


def utc(*parts: int) -> datetime:
    """A UTC time from (year, month, day[, hour[, minute[, second]]])."""
    year, month, day, hour, minute, second = (*parts, 0, 0, 0)[:6]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_parse_digest() -> None:
    assert parse_digest("1h") == IntervalDigest(timedelta(hours=1))
    assert parse_digest("daily at 08:00") == DailyDigest(time(8, 0), ZoneInfo("UTC"))
    assert parse_digest("daily at 8:30 Europe/Kyiv") == DailyDigest(time(8, 30), KYIV)


@pytest.mark.parametrize("text", ["hourly", "daily at 25:00", "daily at 08:00 Mars/Base", "30s"])
def test_parse_digest_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"digest|zone|at least"):
        parse_digest(text)


def test_parse_quiet_hours_and_rate_limits() -> None:
    assert parse_quiet_hours("22:00-07:00 Europe/Kyiv") == QuietHours(time(22), time(7), KYIV)
    assert parse_rate_limit("10/hour") == RateLimit(10, timedelta(hours=1))
    assert parse_rate_limit("5/15m") == RateLimit(5, timedelta(minutes=15))
    for bad in ("22:00", "22:00-22:00", "7-8"):
        with pytest.raises(ValueError, match="quiet"):
            parse_quiet_hours(bad)
    for bad in ("10", "0/hour", "ten/hour", "10/fortnight"):
        with pytest.raises(ValueError, match="limit"):
            parse_rate_limit(bad)


def test_interval_digest_windows_are_aligned_and_shared() -> None:
    hourly = IntervalDigest(timedelta(hours=1))
    assert digest_due(hourly, utc(2025, 8, 7, 9, 0, 1)) == utc(2025, 8, 7, 10)
    assert digest_due(hourly, utc(2025, 8, 7, 9, 59, 59)) == utc(2025, 8, 7, 10)
    assert digest_due(hourly, utc(2025, 8, 7, 10, 0, 0)) == utc(2025, 8, 7, 11)


def test_daily_digest_in_a_time_zone() -> None:
    daily = DailyDigest(time(8, 0), KYIV)  # Kyiv is UTC+3 in August
    assert digest_due(daily, utc(2025, 8, 7, 4, 59)) == utc(2025, 8, 7, 5)
    assert digest_due(daily, utc(2025, 8, 7, 5, 0)) == utc(2025, 8, 8, 5)
    assert digest_due(daily, utc(2025, 12, 7, 5, 30)) == utc(2025, 12, 7, 6)  # UTC+2 in winter
    assert digest_due(daily, utc(2025, 12, 7, 6, 30)) == utc(2025, 12, 8, 6)


def test_daily_digest_on_a_skipped_hour_goes_right_after_the_gap() -> None:
    daily = DailyDigest(time(3, 30), KYIV)  # 2025-03-30 03:00 local jumps to 04:00
    assert digest_due(daily, utc(2025, 3, 29, 12)) == utc(2025, 3, 30, 1, 30)


def test_quiet_hours_across_midnight() -> None:
    quiet = QuietHours(time(22), time(7), KYIV)
    assert quiet_until(quiet, utc(2025, 8, 7, 18, 59)) is None  # 21:59 local
    assert quiet_until(quiet, utc(2025, 8, 7, 19, 0)) == utc(2025, 8, 8, 4)  # 22:00 -> 07:00
    assert quiet_until(quiet, utc(2025, 8, 8, 1, 0)) == utc(2025, 8, 8, 4)  # 04:00 local
    assert quiet_until(quiet, utc(2025, 8, 8, 4, 0)) is None  # 07:00 local


def test_quiet_hours_within_a_day() -> None:
    quiet = QuietHours(time(12), time(13), ZoneInfo("UTC"))
    assert quiet_until(quiet, utc(2025, 8, 7, 12, 30)) == utc(2025, 8, 7, 13)
    assert quiet_until(quiet, utc(2025, 8, 7, 13, 0)) is None


def test_rate_limit_frees_a_slot_when_the_oldest_send_leaves_the_window() -> None:
    limit = RateLimit(2, timedelta(hours=1))
    now = utc(2025, 8, 7, 10)
    assert rate_limited_until(limit, [utc(2025, 8, 7, 9, 30)], now) is None
    sent = [utc(2025, 8, 7, 9, 30), utc(2025, 8, 7, 9, 45), utc(2025, 8, 7, 8, 0)]
    assert rate_limited_until(limit, sent, now) == utc(2025, 8, 7, 10, 30)


@given(st.datetimes(timezones=st.just(UTC)), st.integers(1, 24 * 60))
def test_digest_due_is_always_later_and_within_one_window(when: datetime, minutes: int) -> None:
    every = timedelta(minutes=minutes)
    due = digest_due(IntervalDigest(every), when)
    assert when < due <= when + every


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(0, 23),
    st.integers(0, 23),
)
def test_quiet_until_ends_in_the_future_outside_quiet_hours(
    now: datetime, start: int, end: int
) -> None:
    if start == end:
        return
    quiet = QuietHours(time(start), time(end), KYIV)
    until = quiet_until(quiet, now)
    if until is not None:
        assert now < until <= now + timedelta(days=1, hours=1)
        assert quiet_until(quiet, until) is None
