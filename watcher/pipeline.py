"""One feed's response: settle it (triage) or store its new entries, match them and
enqueue the alerts (ingest). The poller runs these over many feeds at once.

One feed, one error boundary, one transaction: the entries, their alerts and the feed's
new state commit together, so a crash anywhere loses nothing and alerts nothing twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher import identity, pacing, timing
from watcher.models import (
    FeedConfig,
    FeedState,
    FeedUpdate,
    FetchRequest,
    FetchResult,
    Match,
    NewAlert,
    Rule,
)
from watcher.prepare import PreparedFeed
from watcher.rules.matcher import RuleSet
from watcher.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollDeps:
    """What triage and ingest write to and match with; tests hand in a fixed jitter."""

    store: Store
    rules: RuleSet
    jitter: Callable[[], float] = field(default=random.random)


@dataclass(frozen=True, slots=True)
class PollOutcome:
    feed: str
    status: int | None
    error: str | None = None
    entries: int = 0
    new: int = 0
    alerts: int = 0
    not_modified: bool = False
    parse_error: bool = False  # the feed was not well-formed (entries may still be kept)
    matched_rules: tuple[str, ...] = ()  # one name per (rule, entry) match

    @property
    def ok(self) -> bool:
        return self.error is None


def request_for(feed: FeedState, config: FeedConfig) -> FetchRequest:
    return FetchRequest(
        url=feed.url, settings=config.fetch, etag=feed.etag, last_modified=feed.last_modified
    )


@dataclass(frozen=True, slots=True)
class Settled:
    """A response settled without parsing: its outcome, and what to record for the feed."""

    outcome: PollOutcome
    update: FeedUpdate


def triage(
    feed: FeedState, config: FeedConfig, response: FetchResult, now: datetime, deps: PollDeps
) -> Settled | None:
    """Settle a response that needs no parsing (an error, 304, the same body as last time),
    or return None: the body must be parsed and ingested.

    Nothing is written here: the caller records the update, with those of other feeds
    (record_settled), so that a round of 304s costs one transaction, not one per feed.
    """
    if response.error is not None:
        return _failure(feed, config, now, deps, error=response.error, response=response)
    if response.not_modified or (
        feed.body_hash is not None and body_hash(response.body) == feed.body_hash
    ):
        lifetime = timing.cache_lifetime(response.headers, now)
        server_min = _longest(feed.min_interval, lifetime)
        return Settled(
            PollOutcome(feed.name, response.status, not_modified=True),
            _success_update(feed, config, now, deps, response, server_min=server_min),
        )
    return None


def record_settled(deps: PollDeps, settled: Sequence[tuple[FeedState, Settled]]) -> None:
    """Record what triage settled for these feeds, in one transaction."""
    with deps.store.transaction() as tx:
        tx.record_polls([(feed.id, done.update) for feed, done in settled])


def ingest(
    feed: FeedState,
    config: FeedConfig,
    response: FetchResult,
    *,
    prepared: PreparedFeed,
    now: datetime,
    deps: PollDeps,
) -> PollOutcome:
    """Store a parsed feed's new entries, match them and enqueue their alerts, in one
    transaction with the feed's new state. The entries come keyed and tokenised from the
    parser processes (prepare_feed)."""
    parsed, entries = prepared.feed, prepared.entries
    if parsed.error is not None and not entries:
        failed = _record_failure(feed, config, now, deps, error=parsed.error, response=response)
        return dataclasses.replace(failed, parse_error=True)
    if parsed.error is not None:
        log.info("feed %s is not well-formed (%s); kept its entries", feed.name, parsed.error)

    server_min = _longest(parsed.ttl, timing.cache_lifetime(response.headers, now))
    position: dict[str, int] = {}
    for index, entry in enumerate(entries):
        position.setdefault(entry.key, index)  # a repeated key: only the first can be new
    with deps.store.transaction() as tx:
        new = tx.add_entries(feed.id, entries, now)
        matches = [
            match
            for entry in new
            for match in deps.rules.match_text(
                prepared.text(position[entry.key]), entry.key, entry.feed, config.tags
            )
        ]
        enqueued = tx.enqueue_alerts(alerts_for(matches, deps.rules.rules, now))
        update = _success_update(feed, config, now, deps, response, server_min=server_min)
        tx.record_poll(
            feed.id,
            dataclasses.replace(
                update,
                body_hash=body_hash(response.body),
                min_interval=server_min or timedelta(0),
                new_entries=len(new),
            ),
        )
    return PollOutcome(
        feed.name,
        response.status,
        entries=len(entries),
        new=len(new),
        alerts=enqueued,
        parse_error=parsed.error is not None,
        matched_rules=tuple(match.rule for match in matches),
    )


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _longest(*delays: timedelta | None) -> timedelta | None:
    present = [delay for delay in delays if delay]
    return max(present) if present else None


def alerts_for(matches: Iterable[Match], rules: Sequence[Rule], now: datetime) -> list[NewAlert]:
    """One alert per (rule, entry, target); the key makes a repeat impossible to store.

    A rule with a digest holds its alerts until its window closes; they then go out as
    one message.
    """
    by_name = {rule.name: rule for rule in rules}
    alerts: list[NewAlert] = []
    for match in matches:
        rule = by_name.get(match.rule)
        if rule is None:
            continue
        held_until = pacing.digest_due(rule.digest, now) if rule.digest else None
        alerts.extend(
            NewAlert(
                idempotency_key=identity.alert_key(match.rule, match.entry_key, target),
                rule=match.rule,
                target=target,
                entry_key=match.entry_key,
                terms=match.terms,
                created_at=now,
                not_before=held_until,
                batched=held_until is not None,
            )
            for target in rule.notify
        )
    return alerts


def _success_update(
    feed: FeedState,
    config: FeedConfig,
    now: datetime,
    deps: PollDeps,
    response: FetchResult,
    *,
    server_min: timedelta | None,
) -> FeedUpdate:
    return FeedUpdate(
        checked_at=now,
        next_check_at=timing.next_poll(
            now=now,
            interval=interval_for(feed, config, now),
            failures=0,
            server_min=server_min,
            jitter=deps.jitter(),
        ),
        status=response.status,
        etag=response.etag,
        last_modified=response.last_modified,
        new_url=response.permanent_redirect,
    )


def interval_for(feed: FeedState, config: FeedConfig, now: datetime) -> timedelta:
    """The feed's polling interval: as configured, or adapted to how often it publishes."""
    if not config.adaptive:
        return config.interval
    return timing.adaptive_interval(
        configured=config.interval,
        minimum=config.min_interval,
        maximum=config.max_interval,
        recent_new_entry_times=feed.recent_new_at,
        now=now,
    )


def _record_failure(
    feed: FeedState,
    config: FeedConfig,
    now: datetime,
    deps: PollDeps,
    *,
    error: str,
    response: FetchResult,
) -> PollOutcome:
    failed = _failure(feed, config, now, deps, error=error, response=response)
    record_settled(deps, [(feed, failed)])
    return failed.outcome


def _failure(
    feed: FeedState,
    config: FeedConfig,
    now: datetime,
    deps: PollDeps,
    *,
    error: str,
    response: FetchResult,
) -> Settled:
    status = response.status
    next_check = timing.next_poll(
        now=now,
        interval=config.interval,
        failures=feed.error_count + 1,
        server_delay=timing.retry_after(response.headers, now),
        jitter=deps.jitter(),
    )
    gone = status == 410
    if gone:
        log.error("feed %s is gone (HTTP 410): polling stopped until its URL changes", feed.name)
    else:
        log.warning("feed %s failed: %s (next try %s)", feed.name, error, f"{next_check:%H:%M:%S}")
    update = FeedUpdate(
        checked_at=now,
        next_check_at=next_check,
        status=status,
        error=error,
        disable=error if gone else None,
    )
    return Settled(PollOutcome(feed.name, status, error), update)
