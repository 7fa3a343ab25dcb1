"""Parse feeds in worker processes, so a feed that crashes or wedges the parser costs a worker.

Workers start with forkserver (spawn where there is none), never fork: the daemon has
threads, and a forked child inherits their locks in whatever state they were. A worker that
dies breaks the whole ProcessPoolExecutor; the parses it had in hand (running or queued)
come back as a ParsedFeed with an error, and the next submit starts a fresh pool. Small
bodies are parsed in the caller's thread: shipping them to a process costs more than the
parse.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from watcher.models import ParsedFeed
from watcher.parse import parse_feed
from watcher.prepare import PreparedFeed, prepare_feed

log = logging.getLogger(__name__)

DEFAULT_INLINE_BELOW = 16 * 1024
CRASHED = "parse failed: the parser process died; the parser pool was restarted"

# A picklable module-level function (the workers import it by name).
Parser = Callable[[bytes, Mapping[str, str] | None], ParsedFeed]
_T = TypeVar("_T")


@dataclass(eq=False, slots=True)
class _Workers:
    executor: ProcessPoolExecutor
    broken: bool = False  # set from the executor's thread; read under ParsePool._lock


class ParsePool:
    """A process pool for parse_feed. Thread-safe; use as a context manager or close()."""

    def __init__(
        self,
        *,
        workers: int | None = None,
        inline_below: int = DEFAULT_INLINE_BELOW,
        parser: Parser = parse_feed,
        start_method: str | None = None,
    ) -> None:
        """``workers``: default os.cpu_count(). Bodies under ``inline_below`` bytes are parsed
        in the calling thread (0: never). ``parser`` must be importable by the workers."""
        self._max_workers = workers or os.cpu_count() or 1
        self._inline_below = inline_below
        self._parser = parser
        method = start_method or (
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        if method == "fork":
            raise ValueError("fork is not safe in a threaded daemon; use forkserver or spawn")
        self._context = multiprocessing.get_context(method)
        self._lock = threading.Lock()
        self._workers: _Workers | None = None  # started on the first submit
        self._retired: list[ProcessPoolExecutor] = []
        self._closed = False

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def parse(self, body: bytes, headers: Mapping[str, str] | None = None) -> ParsedFeed:
        return self.submit(body, headers).result()

    def submit(self, body: bytes, headers: Mapping[str, str] | None = None) -> Future[ParsedFeed]:
        """A future ParsedFeed. A dead worker gives a ParsedFeed whose error is CRASHED; any
        other exception from the parser is the future's exception, as it would be inline."""
        return self._submit(len(body), _crashed, self._parser, body, dict(headers or {}))

    def submit_for(
        self, feed_name: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> Future[PreparedFeed]:
        """As submit, and the worker also keys and tokenises the entries for this feed
        (prepare_feed), so that the caller's thread only stores and matches them."""
        return self._submit(
            len(body),
            lambda: PreparedFeed.failed(CRASHED),
            prepare_feed,
            body,
            dict(headers or {}),
            feed_name,
            self._parser,
        )

    def _submit(
        self, size: int, crashed: Callable[[], _T], work: Callable[..., _T], *args: Any
    ) -> Future[_T]:
        if size < self._inline_below:
            return _settled(lambda: work(*args))
        for _ in range(2):  # a pool found broken at submit is replaced once
            workers = self._current()
            try:
                inner = workers.executor.submit(work, *args)
            except BrokenProcessPool:
                workers.broken = True
                continue
            return _chained(workers, inner, crashed)
        return _settled(crashed)

    def close(self) -> None:
        """Wait for the parses in hand, then stop the workers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            executors = [*self._retired, *([self._workers.executor] if self._workers else [])]
            self._workers, self._retired = None, []
        for executor in executors:
            executor.shutdown(wait=True, cancel_futures=True)

    def _current(self) -> _Workers:
        with self._lock:
            if self._closed:
                raise RuntimeError("the ParsePool is closed")
            if self._workers is not None and self._workers.broken:
                log.warning("a parser process died; starting a new parser pool")
                # Not shutdown(wait=True): that joins the executor's thread, which may be
                # the one running the callbacks; close() waits for it.
                self._workers.executor.shutdown(wait=False, cancel_futures=True)
                self._retired.append(self._workers.executor)
                self._workers = None
            if self._workers is None:
                self._workers = _Workers(
                    ProcessPoolExecutor(max_workers=self._max_workers, mp_context=self._context)
                )
            return self._workers


def _chained(workers: _Workers, inner: Future[_T], crashed: Callable[[], _T]) -> Future[_T]:
    """A future for the caller: a dead worker becomes crashed(); cancelling it cancels inner."""
    outer: Future[_T] = Future()
    outer.add_done_callback(lambda done: done.cancelled() and inner.cancel())
    inner.add_done_callback(partial(_forward, workers, outer, crashed))
    return outer


def _forward(
    workers: _Workers, outer: Future[_T], crashed: Callable[[], _T], inner: Future[_T]
) -> None:
    """Runs in the executor's thread (or the submitter's, if the parse was done already)."""
    if inner.cancelled():  # close() dropped it, or the caller cancelled outer
        outer.cancel()
        return
    exc = inner.exception()
    if isinstance(exc, BrokenProcessPool):
        workers.broken = True
    if not outer.set_running_or_notify_cancel():
        return
    if isinstance(exc, BrokenProcessPool):
        outer.set_result(crashed())
    elif exc is not None:
        outer.set_exception(exc)
    else:
        outer.set_result(inner.result())


def _crashed() -> ParsedFeed:
    return ParsedFeed(title="", link=None, entries=(), error=CRASHED)


def _settled(parse: Callable[[], _T]) -> Future[_T]:
    future: Future[_T] = Future()
    future.set_running_or_notify_cancel()
    try:
        future.set_result(parse())
    except Exception as exc:
        future.set_exception(exc)
    return future
