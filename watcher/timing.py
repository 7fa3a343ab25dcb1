"""Pure scheduling decisions: when to poll a feed next, when to retry an alert.

Every function takes `now` (and, where randomness helps, a `jitter` fraction in [0, 1))
and returns a value, so the policy can be tested exhaustively without a clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import pairwise

MAX_FEED_BACKOFF = timedelta(hours=24)
# A server's TTL or cache lifetime stretches a feed's interval by at most this much: a feed
# that claims to change yearly is still looked at daily.
MAX_SERVER_MIN = timedelta(hours=24)
# adaptive_interval needs this many distinct new-entry times (two gaps) to say anything.
ADAPTIVE_MIN_HISTORY = 3
_MAX_DELTA_SECONDS = 2**31  # RFC 9111 §1.2.2: larger delta-seconds mean this


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


def cache_lifetime(headers: Mapping[str, str], now: datetime) -> timedelta | None:
    """How much longer a response stays fresh by its caching headers, from now.

    Cache-Control max-age (else s-maxage) minus Age; else Expires minus Date (``now`` when
    there is no Date) minus Age. None when the headers give no lifetime or say no-store /
    no-cache. An invalid Expires ("0", "-1") has expired already: zero. Header names are
    lower case, as in FetchResult.headers.
    """
    directives = _cache_directives(headers.get("cache-control", ""))
    if "no-store" in directives or "no-cache" in directives:
        return None
    age = timedelta(seconds=_delta_seconds(headers.get("age")) or 0)
    for name in ("max-age", "s-maxage"):
        seconds = _delta_seconds(directives.get(name))
        if seconds is not None:
            return max(timedelta(seconds=seconds) - age, timedelta())
    if "expires" not in headers:
        return None
    expires = _http_date(headers["expires"])
    if expires is None:
        return timedelta()
    date = _http_date(headers.get("date", "")) or now
    return max(expires - date - age, timedelta())


def adaptive_interval(
    *,
    configured: timedelta,
    minimum: timedelta,
    maximum: timedelta,
    recent_new_entry_times: Sequence[datetime],
    now: datetime,
) -> timedelta:
    """How often to poll a feed, from when its recent entries appeared.

    Half the typical gap between new entries, clamped to [minimum, maximum]. The typical
    gap is the median of the gaps, or the time since the newest entry when that is longer
    (a feed gone quiet is polled less and less). Entries at the same instant count once.
    With fewer than ADAPTIVE_MIN_HISTORY distinct times: ``configured``, clamped.
    """
    if minimum > maximum:
        raise ValueError(f"minimum {minimum} is more than maximum {maximum}")
    times = sorted({t for t in recent_new_entry_times if t <= now})
    if len(times) < ADAPTIVE_MIN_HISTORY:
        return _clamp(configured, minimum, maximum)
    gaps = sorted(later - earlier for earlier, later in pairwise(times))
    middle = len(gaps) // 2
    median = gaps[middle] if len(gaps) % 2 else (gaps[middle - 1] + gaps[middle]) / 2
    typical = max(median, now - times[-1])
    return _clamp(typical / 2, minimum, maximum)


def next_poll(
    *,
    now: datetime,
    interval: timedelta,
    failures: int,
    server_delay: timedelta | None = None,
    server_min: timedelta | None = None,
    jitter: float = 0.0,
) -> datetime:
    """When to poll a feed again.

    `failures` counts consecutive failed polls including this one (0 after a success).
    A failing feed backs off exponentially from its interval (capped at 24 h, never
    below the interval), and a server's Retry-After is honoured as a lower bound.
    After a success, `server_min` (the feed's TTL or the response's cache lifetime) is a
    lower bound too, up to MAX_SERVER_MIN.
    """
    if failures <= 0:
        delay = interval
        if server_min is not None:
            delay = max(delay, min(server_min, MAX_SERVER_MIN))
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


def _clamp(value: timedelta, low: timedelta, high: timedelta) -> timedelta:
    return max(low, min(value, high))


def _cache_directives(header: str) -> dict[str, str]:
    """Cache-Control directives by lower-case name; the first of a repeated one wins."""
    directives: dict[str, str] = {}
    for part in header.split(","):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name:
            directives.setdefault(name, value.strip().strip('"'))
    return directives


def _delta_seconds(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        return None
    return min(int(value[:12]), _MAX_DELTA_SECONDS)


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else None
