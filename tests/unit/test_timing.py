from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.timing import (
    MAX_FEED_BACKOFF,
    MAX_SERVER_MIN,
    adaptive_interval,
    cache_lifetime,
    next_delivery_attempt,
    next_poll,
    retry_after,
)

NOW = datetime(2025, 8, 7, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)


def test_success_polls_again_after_the_interval() -> None:
    assert next_poll(now=NOW, interval=INTERVAL, failures=0) == NOW + INTERVAL


def test_failures_back_off_exponentially_up_to_a_day() -> None:
    delays = [next_poll(now=NOW, interval=INTERVAL, failures=n) - NOW for n in range(1, 12)]
    assert delays[:4] == [INTERVAL, 2 * INTERVAL, 4 * INTERVAL, 8 * INTERVAL]
    assert delays[-1] == MAX_FEED_BACKOFF
    assert delays == sorted(delays)


def test_backoff_never_shortens_a_long_interval() -> None:
    interval = timedelta(days=2)
    assert next_poll(now=NOW, interval=interval, failures=5) == NOW + interval


def test_retry_after_is_a_lower_bound() -> None:
    wait = timedelta(hours=3)
    assert next_poll(now=NOW, interval=INTERVAL, failures=1, server_delay=wait) == NOW + wait
    short = timedelta(seconds=5)
    assert next_poll(now=NOW, interval=INTERVAL, failures=1, server_delay=short) == NOW + INTERVAL


@given(st.integers(0, 100), st.floats(0, 0.999))
def test_jitter_only_adds_a_little(failures: int, jitter: float) -> None:
    plain = next_poll(now=NOW, interval=INTERVAL, failures=failures)
    jittered = next_poll(now=NOW, interval=INTERVAL, failures=failures, jitter=jitter)
    assert plain <= jittered <= plain + (plain - NOW) * 0.1


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", timedelta(seconds=120)),
        ("Thu, 07 Aug 2025 13:00:00 GMT", timedelta(hours=1)),
        ("Thu, 07 Aug 2025 11:00:00 GMT", timedelta()),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_header(header: str, expected: timedelta | None) -> None:
    assert retry_after({"retry-after": header}, NOW) == expected


def test_delivery_retries_double_then_give_up() -> None:
    def attempt(n: int) -> datetime | None:
        return next_delivery_attempt(
            now=NOW,
            attempts=n,
            base=timedelta(minutes=1),
            cap=timedelta(minutes=10),
            max_attempts=6,
        )

    assert [attempt(n) for n in range(1, 6)] == [
        NOW + timedelta(minutes=m) for m in (1, 2, 4, 8, 10)
    ]
    assert attempt(6) is None


# --- a server's lower bound after a success ---


def test_server_min_stretches_the_interval_after_a_success() -> None:
    hour = timedelta(hours=1)
    assert next_poll(now=NOW, interval=INTERVAL, failures=0, server_min=hour) == NOW + hour
    short = timedelta(minutes=1)
    assert next_poll(now=NOW, interval=INTERVAL, failures=0, server_min=short) == NOW + INTERVAL


def test_server_min_is_capped() -> None:
    year = timedelta(days=365)
    assert next_poll(now=NOW, interval=INTERVAL, failures=0, server_min=year) == (
        NOW + MAX_SERVER_MIN
    )
    week = timedelta(weeks=1)
    assert next_poll(now=NOW, interval=week, failures=0, server_min=year) == NOW + week


def test_server_min_does_not_apply_to_a_failing_feed() -> None:
    day = timedelta(days=1)
    assert next_poll(now=NOW, interval=INTERVAL, failures=1, server_min=day) == NOW + INTERVAL


# --- cache lifetime ---

DATE = "Thu, 07 Aug 2025 12:00:00 GMT"  # = NOW


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"cache-control": "max-age=300"}, timedelta(seconds=300)),
        ({"cache-control": "public, MAX-AGE=600, must-revalidate"}, timedelta(minutes=10)),
        ({"cache-control": 'max-age="60"'}, timedelta(seconds=60)),
        ({"cache-control": "s-maxage=120"}, timedelta(seconds=120)),
        ({"cache-control": "max-age=300, s-maxage=900"}, timedelta(seconds=300)),
        ({"cache-control": "max-age=300, max-age=5"}, timedelta(seconds=300)),  # first wins
        ({"cache-control": "max-age=300", "age": "290"}, timedelta(seconds=10)),
        ({"cache-control": "max-age=300", "age": "900"}, timedelta()),
        ({"cache-control": "max-age=0"}, timedelta()),
        ({"cache-control": "max-age=99999999999999"}, timedelta(seconds=2**31)),
        ({"cache-control": "no-cache, max-age=300"}, None),
        ({"cache-control": "max-age=300, no-store"}, None),
        ({"cache-control": "max-age=soon"}, None),
        ({"cache-control": "max-age=-1"}, None),
        ({"cache-control": "private"}, None),
        # Expires against Date; then against now; max-age wins over Expires.
        ({"expires": "Thu, 07 Aug 2025 13:00:00 GMT", "date": DATE}, timedelta(hours=1)),
        (
            {"expires": "Thu, 07 Aug 2025 13:00:00 GMT", "date": "Thu, 07 Aug 2025 12:30:00 GMT"},
            timedelta(minutes=30),
        ),
        ({"expires": "Thu, 07 Aug 2025 12:10:00 GMT"}, timedelta(minutes=10)),
        (
            {"expires": "Thu, 07 Aug 2025 13:00:00 GMT", "date": DATE, "age": "600"},
            timedelta(minutes=50),
        ),
        ({"expires": "Thu, 07 Aug 2025 11:00:00 GMT", "date": DATE}, timedelta()),
        ({"expires": "0"}, timedelta()),  # invalid: expired already
        ({"expires": "-1", "date": DATE}, timedelta()),
        ({"expires": "Thu, 07 Aug 2025 13:00:00 GMT", "date": "garbage"}, timedelta(hours=1)),
        (
            {"cache-control": "max-age=60", "expires": "Thu, 07 Aug 2025 13:00:00 GMT"},
            timedelta(seconds=60),
        ),
        ({"cache-control": "no-store", "expires": "Thu, 07 Aug 2025 13:00:00 GMT"}, None),
        ({}, None),
        ({"date": DATE}, None),
    ],
)
def test_cache_lifetime(headers: dict[str, str], expected: timedelta | None) -> None:
    assert cache_lifetime(headers, NOW) == expected


# --- adaptive interval ---

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
BOUNDS = {"configured": 15 * MINUTE, "minimum": 5 * MINUTE, "maximum": 6 * HOUR}


def ago(*deltas: timedelta) -> list[datetime]:
    return [NOW - delta for delta in deltas]


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        # Too little history: the configured interval.
        ([], 15 * MINUTE),
        (ago(HOUR), 15 * MINUTE),
        (ago(HOUR, 2 * HOUR), 15 * MINUTE),
        (ago(HOUR, HOUR, HOUR, 2 * HOUR), 15 * MINUTE),  # the same instant counts once
        (ago(-HOUR, -2 * HOUR, HOUR), 15 * MINUTE),  # future times are ignored
        # Hourly: half an hour. Every two hours, just now: an hour.
        (ago(0 * HOUR, HOUR, 2 * HOUR, 3 * HOUR), 30 * MINUTE),
        (ago(MINUTE, 2 * HOUR + MINUTE, 4 * HOUR + MINUTE), HOUR),
        # The median, not the mean: one long pause does not slow a busy feed.
        (ago(0 * HOUR, HOUR, 2 * HOUR, 3 * HOUR, 30 * HOUR), 30 * MINUTE),
        # Even count of gaps: the mean of the middle two (1 h and 2 h -> 45 min).
        (ago(0 * HOUR, HOUR, 3 * HOUR, 4 * HOUR, 7 * HOUR), 45 * MINUTE),
        # Busy: clamped to the minimum.
        (ago(0 * MINUTE, MINUTE, 2 * MINUTE, 3 * MINUTE), 5 * MINUTE),
        # Gone quiet: the time since the newest entry counts, up to the maximum.
        (ago(3 * HOUR, 4 * HOUR, 5 * HOUR), 90 * MINUTE),
        (ago(timedelta(days=7), timedelta(days=7, hours=1), timedelta(days=7, hours=2)), 6 * HOUR),
    ],
)
def test_adaptive_interval(times: list[datetime], expected: timedelta) -> None:
    assert adaptive_interval(recent_new_entry_times=times, now=NOW, **BOUNDS) == expected


def test_adaptive_interval_clamps_the_configured_interval_too() -> None:
    interval = adaptive_interval(
        configured=timedelta(days=2),
        minimum=MINUTE,
        maximum=HOUR,
        recent_new_entry_times=[],
        now=NOW,
    )
    assert interval == HOUR


def test_adaptive_interval_needs_a_sane_range() -> None:
    with pytest.raises(ValueError, match="minimum"):
        adaptive_interval(
            configured=HOUR, minimum=HOUR, maximum=MINUTE, recent_new_entry_times=[], now=NOW
        )


@given(
    configured=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    bounds=st.tuples(
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)),
    ).map(sorted),
    offsets=st.lists(st.timedeltas(min_value=-timedelta(days=3), max_value=timedelta(days=400))),
)
def test_adaptive_interval_stays_within_its_bounds(
    configured: timedelta, bounds: list[timedelta], offsets: list[timedelta]
) -> None:
    minimum, maximum = bounds
    interval = adaptive_interval(
        configured=configured,
        minimum=minimum,
        maximum=maximum,
        recent_new_entry_times=[NOW - offset for offset in offsets],
        now=NOW,
    )
    assert minimum <= interval <= maximum


@given(
    gap=st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=2)),
    count=st.integers(3, 30),
)
def test_a_steady_feed_is_polled_at_half_its_gap(gap: timedelta, count: int) -> None:
    times = [NOW - gap * n for n in range(count)]
    interval = adaptive_interval(
        configured=HOUR,
        minimum=timedelta(0),
        maximum=timedelta(days=30),
        recent_new_entry_times=times,
        now=NOW,
    )
    assert interval == gap / 2
