"""poll_feed(): fetch one feed, store its new entries, match them, enqueue the alerts.

One feed, one error boundary, one transaction: the entries, their alerts and the feed's
new state commit together, so a crash anywhere loses nothing and alerts nothing twice.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from watcher import identity, timing
from watcher.models import (
    FeedConfig,
    FeedState,
    FeedUpdate,
    FetchRequest,
    FetchResult,
    Match,
    NewAlert,
    ParsedFeed,
    Rule,
)
from watcher.rules.matcher import RuleSet
from watcher.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollDeps:
    """The edges poll_feed talks to; tests hand in real local servers and a fixed clock."""

    fetch: Callable[[FetchRequest], FetchResult]
    parse: Callable[[bytes, Mapping[str, str]], ParsedFeed]
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


def poll_feed(feed: FeedState, config: FeedConfig, now: datetime, deps: PollDeps) -> PollOutcome:
    request = FetchRequest(
        url=feed.url, settings=config.fetch, etag=feed.etag, last_modified=feed.last_modified
    )
    response = deps.fetch(request)
    if response.error is not None:
        return _record_failure(feed, config, now, deps, error=response.error, response=response)
    if response.not_modified:
        _record_success(feed, config, now, deps, response)
        return PollOutcome(feed.name, response.status, not_modified=True)

    parsed = deps.parse(response.body, response.headers)
    if parsed.error is not None and not parsed.entries:
        failed = _record_failure(feed, config, now, deps, error=parsed.error, response=response)
        return dataclasses.replace(failed, parse_error=True)
    if parsed.error is not None:
        log.info("feed %s is not well-formed (%s); kept its entries", feed.name, parsed.error)

    entries = [identity.keyed(entry, feed.name) for entry in parsed.entries]
    with deps.store.transaction() as tx:
        new = tx.add_entries(feed.id, entries, now)
        matches = [match for entry in new for match in deps.rules.match(entry, config.tags)]
        enqueued = tx.enqueue_alerts(alerts_for(matches, deps.rules.rules, now))
        tx.record_poll(feed.id, _success_update(config, now, deps, response))
    return PollOutcome(
        feed.name,
        response.status,
        entries=len(entries),
        new=len(new),
        alerts=enqueued,
        parse_error=parsed.error is not None,
        matched_rules=tuple(match.rule for match in matches),
    )


def alerts_for(matches: Iterable[Match], rules: Sequence[Rule], now: datetime) -> list[NewAlert]:
    """One alert per (rule, entry, target); the key makes a repeat impossible to store."""
    targets_by_rule = {rule.name: rule.notify for rule in rules}
    return [
        NewAlert(
            idempotency_key=identity.alert_key(match.rule, match.entry_key, target),
            rule=match.rule,
            target=target,
            entry_key=match.entry_key,
            terms=match.terms,
            created_at=now,
        )
        for match in matches
        for target in targets_by_rule.get(match.rule, ())
    ]


def _success_update(
    config: FeedConfig, now: datetime, deps: PollDeps, response: FetchResult
) -> FeedUpdate:
    return FeedUpdate(
        checked_at=now,
        next_check_at=timing.next_poll(
            now=now, interval=config.interval, failures=0, jitter=deps.jitter()
        ),
        status=response.status,
        etag=response.etag,
        last_modified=response.last_modified,
    )


def _record_success(
    feed: FeedState, config: FeedConfig, now: datetime, deps: PollDeps, response: FetchResult
) -> None:
    with deps.store.transaction() as tx:
        tx.record_poll(feed.id, _success_update(config, now, deps, response))


def _record_failure(
    feed: FeedState,
    config: FeedConfig,
    now: datetime,
    deps: PollDeps,
    *,
    error: str,
    response: FetchResult,
) -> PollOutcome:
    status = response.status
    next_check = timing.next_poll(
        now=now,
        interval=config.interval,
        failures=feed.error_count + 1,
        server_delay=timing.retry_after(response.headers, now),
        jitter=deps.jitter(),
    )
    log.warning("feed %s failed: %s (next try %s)", feed.name, error, f"{next_check:%H:%M:%S}")
    with deps.store.transaction() as tx:
        tx.record_poll(
            feed.id,
            FeedUpdate(checked_at=now, next_check_at=next_check, status=status, error=error),
        )
    return PollOutcome(feed.name, status, error)
