"""Pure scheduling decisions: when to poll a feed next, when to retry an alert.

Every function takes `now` (and, where randomness helps, a `jitter` fraction in [0, 1))
and returns a value, so the policy can be tested exhaustively without a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

MAX_FEED_BACKOFF = timedelta(hours=24)


def retry_after(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """The server's Retry-After (seconds or an HTTP date) as a delay from now."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(when - now, timedelta())


def next_poll(
    *,
    now: datetime,
    interval: timedelta,
    failures: int,
    server_delay: timedelta | None = None,
    jitter: float = 0.0,
) -> datetime:
    """When to poll a feed again.

    `failures` counts consecutive failed polls including this one (0 after a success).
    A failing feed backs off exponentially from its interval (capped at 24 h, never
    below the interval), and a server's Retry-After is honoured as a lower bound.
    """
    if failures <= 0:
        delay = interval
    else:
        backoff = interval * (1 << min(failures - 1, 16))
        delay = max(min(backoff, MAX_FEED_BACKOFF), interval)
    if server_delay is not None:
        delay = max(delay, server_delay)
    return now + delay + delay * 0.1 * jitter


def next_delivery_attempt(
    *,
    now: datetime,
    attempts: int,
    base: timedelta,
    cap: timedelta,
    max_attempts: int,
    jitter: float = 0.0,
) -> datetime | None:
    """When to try a failed alert again, or None when it has used all its attempts.

    `attempts` counts the attempts made so far, including the one that just failed.
    """
    if attempts >= max_attempts:
        return None
    delay = min(base * (1 << min(attempts - 1, 30)), cap)
    return now + delay + delay * 0.2 * jitter
