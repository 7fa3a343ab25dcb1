"""Poll many feeds at once: fetch concurrently, parse in worker processes, and store each
feed's result in this thread, one transaction per feed with new content.

Fetching (an event loop in the Fetcher's thread), parsing (the process pool) and storing
(here) overlap, so both cores work while the network is busy. Feeds settled without parsing
(304, the same body, a failure) are recorded together, one transaction for up to
SETTLED_BATCH of them, so an unchanged round costs a few commits rather than one per feed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TypeVar

from watcher import timing
from watcher.errors import StoreError
from watcher.models import FeedConfig, FeedState, FeedUpdate, FetchRequest, FetchResult
from watcher.pipeline import (
    PollDeps,
    PollOutcome,
    Settled,
    ingest,
    record_settled,
    request_for,
    triage,
)
from watcher.prepare import PreparedFeed

log = logging.getLogger(__name__)
_T = TypeVar("_T")
SETTLED_BATCH = 500  # settled feeds recorded in one transaction, at most
SETTLED_WAIT = 2.0  # seconds a settled feed waits, at most, for others to share its commit


@dataclass(frozen=True, slots=True)
class PollerEdges:
    fetch_many: Callable[[Iterable[FetchRequest]], Generator[FetchResult, None, None]]
    # feed name, body, headers -> the body parsed, keyed and tokenised for that feed
    submit_parse: Callable[[str, bytes, Mapping[str, str]], Future[PreparedFeed]]
    clock: Callable[[], datetime]
    window: int  # parses in flight before the oldest one is stored


def poll_feeds(
    work: Sequence[tuple[FeedState, FeedConfig]],
    deps: PollDeps,
    edges: PollerEdges,
    *,
    stop: threading.Event,
    progress: Callable[[], None] = lambda: None,
) -> list[PollOutcome]:
    """Poll every (feed, config) of `work`; stops early, between feeds, when `stop` is set.

    A feed whose result was not stored when stopping is simply polled again next time.
    """
    outcomes: list[PollOutcome] = []
    parsing: deque[tuple[FeedState, FeedConfig, FetchResult, Future[PreparedFeed]]] = deque()
    settled: list[tuple[FeedState, Settled]] = []
    first_settled = 0.0  # time.monotonic() when the oldest of `settled` was

    def record() -> None:
        if settled:
            record_settled(deps, settled)
            outcomes.extend(done.outcome for _, done in settled)
            settled.clear()

    def store_oldest() -> None:
        feed, config, response, future = parsing.popleft()
        outcomes.append(
            _safely(
                feed,
                config,
                deps,
                edges.clock,
                lambda now: ingest(
                    feed, config, response, prepared=future.result(), now=now, deps=deps
                ),
            )
        )
        progress()

    requests = [request_for(feed, config) for feed, config in work]
    with closing(edges.fetch_many(requests)) as results:
        for response in results:
            if stop.is_set():
                break
            assert response.index is not None
            feed, config = work[response.index]
            settle = partial(triage, feed, config, response, deps=deps)
            done = _safely(feed, config, deps, edges.clock, settle)
            if isinstance(done, Settled):
                if not settled:
                    first_settled = time.monotonic()
                settled.append((feed, done))
                progress()
            elif done is not None:  # triage failed; _safely recorded it
                outcomes.append(done)
                progress()
            else:
                future = edges.submit_parse(feed.name, response.body, response.headers)
                parsing.append((feed, config, response, future))
            while parsing and (len(parsing) > edges.window or parsing[0][3].done()):
                store_oldest()
            if settled and (
                len(settled) >= SETTLED_BATCH or time.monotonic() - first_settled > SETTLED_WAIT
            ):
                record()
    record()  # also when stopping: these were fetched and settled already
    while parsing and not stop.is_set():
        store_oldest()
    return outcomes


def _safely(
    feed: FeedState,
    config: FeedConfig,
    deps: PollDeps,
    clock: Callable[[], datetime],
    action: Callable[[datetime], _T],
) -> _T | PollOutcome:
    """One feed, one error boundary: a bug while handling it is recorded as its failure
    and never stops the other feeds. A failing store is no feed's fault: it stops the
    poll, and the tick reports it."""
    now = clock()
    try:
        return action(now)
    except StoreError:
        raise
    except Exception as exc:
        log.exception("feed %s: unexpected error", feed.name)
        error = f"internal error: {type(exc).__name__}: {exc}"
        retry = timing.next_poll(now=now, interval=config.interval, failures=feed.error_count + 1)
        with deps.store.transaction() as tx:
            tx.record_poll(
                feed.id, FeedUpdate(checked_at=now, next_check_at=retry, status=None, error=error)
            )
        return PollOutcome(feed.name, None, error)
