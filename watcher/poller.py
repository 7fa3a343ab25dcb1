"""Poll many feeds at once: fetch concurrently, parse in worker processes, and store each
feed's result in this thread, one transaction per feed.

Fetching (an event loop in the Fetcher's thread), parsing (the process pool) and storing
(here) overlap, so both cores work while the network is busy.
"""

from __future__ import annotations

import logging
import threading
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
from watcher.models import FeedConfig, FeedState, FeedUpdate, FetchRequest, FetchResult, ParsedFeed
from watcher.pipeline import PollDeps, PollOutcome, ingest, request_for, triage

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class PollerEdges:
    fetch_many: Callable[[Iterable[FetchRequest]], Generator[FetchResult, None, None]]
    submit_parse: Callable[[bytes, Mapping[str, str]], Future[ParsedFeed]]
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
    parsing: deque[tuple[FeedState, FeedConfig, FetchResult, Future[ParsedFeed]]] = deque()

    def store_oldest() -> None:
        feed, config, response, future = parsing.popleft()
        outcomes.append(
            _safely(
                feed,
                config,
                deps,
                edges.clock,
                lambda now: ingest(
                    feed, config, response, parsed=future.result(), now=now, deps=deps
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
            if done is not None:
                outcomes.append(done)
                progress()
            else:
                future = edges.submit_parse(response.body, response.headers)
                parsing.append((feed, config, response, future))
            while parsing and (len(parsing) > edges.window or parsing[0][3].done()):
                store_oldest()
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
