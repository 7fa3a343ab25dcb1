from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.timing import MAX_FEED_BACKOFF, next_delivery_attempt, next_poll, retry_after

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
