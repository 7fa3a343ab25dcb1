"""Pure decisions on when an alert may go out: digests, quiet hours and rate limits.

Every function takes `now` (or the alert's creation time) and returns a time or None, so
the policy is tested without a clock. Times are timezone-aware; local times ("08:00",
"22:00-07:00") are read in the zone the user named, so daylight-saving changes land right.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from watcher.units import parse_duration

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class IntervalDigest:
    """`digest: 1h`: one message per aligned window (on the hour, every 15 minutes …)."""

    every: timedelta


@dataclass(frozen=True, slots=True)
class DailyDigest:
    """`digest: daily at 08:00 Europe/Kyiv`."""

    at: time
    zone: ZoneInfo


Digest = IntervalDigest | DailyDigest


@dataclass(frozen=True, slots=True)
class QuietHours:
    """`quiet: 22:00-07:00 Europe/Kyiv`: nothing is sent from start until end (local)."""

    start: time
    end: time
    zone: ZoneInfo


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`max: 10/hour`: at most `count` messages per `window`."""

    count: int
    window: timedelta


_CLOCK = r"([01]?\d|2[0-3]):([0-5]\d)"
_DAILY = re.compile(rf"daily\s+at\s+{_CLOCK}(?:\s+(\S+))?", re.IGNORECASE)
_QUIET = re.compile(rf"{_CLOCK}\s*-\s*{_CLOCK}(?:\s+(\S+))?")
_RATE = re.compile(r"(\d+)\s*/\s*(second|minute|hour|day|\d+\s*[smhd])", re.IGNORECASE)
_RATE_WINDOWS = {
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}


def parse_digest(text: str) -> Digest:
    """`1h`, `15m`, `daily at 08:00`, `daily at 08:00 Europe/Kyiv` (default zone UTC)."""
    match = _DAILY.fullmatch(text.strip())
    if match:
        return DailyDigest(_time(match.group(1), match.group(2)), _zone(match.group(3)))
    try:
        every = parse_duration(text)
    except ValueError:
        raise ValueError(
            f"expected a digest like 1h, 30m or 'daily at 08:00 Europe/Kyiv', got {text!r}"
        ) from None
    if every < timedelta(minutes=1):
        raise ValueError("a digest interval must be at least 1m")
    return IntervalDigest(every)


def parse_quiet_hours(text: str) -> QuietHours:
    """`22:00-07:00` or `22:00-07:00 Europe/Kyiv` (default zone UTC)."""
    match = _QUIET.fullmatch(text.strip())
    if not match:
        raise ValueError(f"expected quiet hours like '22:00-07:00 Europe/Kyiv', got {text!r}")
    start = _time(match.group(1), match.group(2))
    end = _time(match.group(3), match.group(4))
    if start == end:
        raise ValueError("quiet hours must not start and end at the same time")
    return QuietHours(start, end, _zone(match.group(5)))


def parse_rate_limit(text: str) -> RateLimit:
    """`10/hour`, `3/minute`, `100/day`, `5/15m`."""
    match = _RATE.fullmatch(text.strip())
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"expected a limit like 10/hour or 5/15m, got {text!r}")
    unit = match.group(2).lower()
    window = _RATE_WINDOWS.get(unit) or parse_duration(unit.replace(" ", ""))
    return RateLimit(int(match.group(1)), window)


def _time(hours: str, minutes: str) -> time:
    return time(int(hours), int(minutes))


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use a name like Europe/Kyiv)") from None


def digest_due(digest: Digest, created_at: datetime) -> datetime:
    """When the digest holding an alert created at `created_at` goes out.

    Alerts in the same window get the same time, which is what groups them.
    """
    if isinstance(digest, IntervalDigest):
        windows = (created_at - EPOCH) // digest.every + 1
        return EPOCH + windows * digest.every
    local = created_at.astimezone(digest.zone)
    due = local.replace(hour=digest.at.hour, minute=digest.at.minute, second=0, microsecond=0)
    if due <= local:
        due = _next_day_at(local, digest.at, digest.zone)
    return _resolved(due, digest.zone)


def quiet_until(quiet: QuietHours, now: datetime) -> datetime | None:
    """The end of the quiet period `now` falls in, or None when sending is allowed."""
    local = now.astimezone(quiet.zone)
    clock = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside = quiet.start <= clock < quiet.end
        ends_tomorrow = False
    else:  # across midnight, e.g. 22:00-07:00
        inside = clock >= quiet.start or clock < quiet.end
        ends_tomorrow = clock >= quiet.start
    if not inside:
        return None
    end = local.replace(hour=quiet.end.hour, minute=quiet.end.minute, second=0, microsecond=0)
    if ends_tomorrow:
        end = _next_day_at(local, quiet.end, quiet.zone)
    return _resolved(end, quiet.zone)


def rate_limited_until(
    limit: RateLimit, sent_at: Sequence[datetime], now: datetime
) -> datetime | None:
    """When the next message may go, given the send times of recent messages; None if now."""
    recent = sorted(when for when in sent_at if when > now - limit.window)
    if len(recent) < limit.count:
        return None
    return recent[len(recent) - limit.count] + limit.window


def _next_day_at(local: datetime, at: time, zone: ZoneInfo) -> datetime:
    tomorrow = (local + timedelta(days=1)).date()
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, at.hour, at.minute, tzinfo=zone)


def _resolved(local: datetime, zone: ZoneInfo) -> datetime:
    """A local wall time as UTC; a time skipped by a DST jump moves forward past the gap."""
    as_utc = local.astimezone(UTC)
    if as_utc.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return (
            (local.replace(tzinfo=None) + timedelta(hours=1)).replace(tzinfo=zone).astimezone(UTC)
        )
    return as_utc
