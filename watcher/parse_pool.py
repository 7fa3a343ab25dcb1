"""Parse feeds in worker processes, so a feed that crashes or wedges the parser costs a worker.

Workers start with forkserver (spawn where there is none), never fork: the daemon has
threads, and a forked child inherits their locks in whatever state they were. A worker that
dies breaks the whole ProcessPoolExecutor; the parses it had in hand (running or queued)
come back as a ParsedFeed with an error, and the next submit starts a fresh pool. Small
bodies are parsed in the caller's thread: shipping them to a process costs more than the
parse.

A parse that runs longer than ``time_limit`` seconds (wall clock, from the moment a worker
starts it) is abandoned: a watchdog thread kills its worker, the feed gets the error
"parse took longer than Ns, abandoned" (it then backs off like any failed feed), and the
other parses that worker's pool had in hand are submitted again to the new pool, so that
they do not pay for it. The workers tell the watchdog what they run through a small array
in shared memory: their pid, the job's number and when it started.

The forkserver preloads watcher.prepare, so each worker starts with the parser imported.
Workers still import the main module (multiprocessing does, for spawn and forkserver): under
the daemon that is the `watcher` console script, whose watcher.cli imports nothing (the
commands, typer and the daemon's libraries load when the command runs).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Generic, TypeVar

from watcher.models import ParsedFeed
from watcher.parse import parse_feed
from watcher.prepare import Parser, PreparedFeed, prepare_feed

log = logging.getLogger(__name__)

DEFAULT_INLINE_BELOW = 16 * 1024
# Wall-clock seconds a worker may spend on one feed. feedparser takes about 0.25 s per MB of
# feed on the benchmark's machine, so a 10 MB body (fetch.max_bytes) is far below it.
DEFAULT_TIME_LIMIT = 30.0
CRASHED = "parse failed: the parser process died; the parser pool was restarted"
PRELOAD = ["watcher.prepare"]  # what the forkserver imports once, for every worker
_RESUBMITS = 2  # how often a parse may be sent again after others' abandoned parses

MMAP_THRESHOLD = 64 * 1024  # bytes: glibc's malloc gives larger blocks an mmap of their own
_M_MMAP_THRESHOLD = -3  # mallopt's parameter, from glibc's malloc.h
_T = TypeVar("_T")
_SLOT = 3  # per worker in the shared array: pid, job number (0: idle), started (monotonic)


def abandoned_error(limit: float) -> str:
    return f"parse took longer than {limit:g}s, abandoned"


@dataclass(eq=False, slots=True)
class _Workers:
    executor: ProcessPoolExecutor
    board: Any  # multiprocessing Array("d", workers * _SLOT), written by the workers
    broken: bool = False  # set from the executor's thread; read under ParsePool._lock
    abandoned: set[int] = field(default_factory=set)  # jobs whose worker the watchdog killed


@dataclass(eq=False, slots=True, weakref_slot=True)
class _Job(Generic[_T]):
    number: int
    failed: Callable[[str], _T]  # the result for a parse that could not be done
    work: Callable[..., _T]
    args: tuple[Any, ...]
    outer: Future[_T]  # the caller's
    inner: Future[_T] | None = None  # the executor's, for the latest attempt
    resubmits: int = 0


class ParsePool:
    """A process pool for parse_feed. Thread-safe; use as a context manager or close()."""

    def __init__(
        self,
        *,
        workers: int | None = None,
        inline_below: int = DEFAULT_INLINE_BELOW,
        parser: Parser = parse_feed,
        start_method: str | None = None,
        time_limit: float = DEFAULT_TIME_LIMIT,
    ) -> None:
        """``workers``: default os.cpu_count(). Bodies under ``inline_below`` bytes are parsed
        in the calling thread (0: never). ``parser`` must be importable by the workers.
        ``time_limit``: seconds a worker may spend on one body before it is killed."""
        self._max_workers = workers or os.cpu_count() or 1
        self._inline_below = inline_below
        self._parser = parser
        self._time_limit = time_limit
        method = start_method or (
            "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        )
        if method == "fork":
            raise ValueError("fork is not safe in a threaded daemon; use forkserver or spawn")
        self._context = multiprocessing.get_context(method)
        if method == "forkserver":
            # Only before the forkserver starts (once per process); later calls change nothing.
            self._context.set_forkserver_preload(PRELOAD)
        self._lock = threading.Lock()
        self._workers: _Workers | None = None  # started on the first submit
        self._retired: list[_Workers] = []
        self._closed = False
        self._jobs = 0
        self._stop = threading.Event()
        self._watchdog: threading.Thread | None = None

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
        """A future ParsedFeed. A dead worker gives a ParsedFeed whose error is CRASHED, a
        parse over the time limit one whose error is abandoned_error(limit); any other
        exception from the parser is the future's exception, as it would be inline."""
        return self._submit(len(body), ParsedFeed.failed, self._parser, body, dict(headers or {}))

    def submit_for(
        self, feed_name: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> Future[PreparedFeed]:
        """As submit, and the worker also keys and tokenises the entries for this feed
        (prepare_feed), so that the caller's thread only stores and matches them."""
        return self._submit(
            len(body),
            PreparedFeed.failed,
            prepare_feed,
            body,
            dict(headers or {}),
            feed_name,
            self._parser,
        )

    def _submit(
        self, size: int, failed: Callable[[str], _T], work: Callable[..., _T], *args: Any
    ) -> Future[_T]:
        if size < self._inline_below:
            return _settled(lambda: work(*args))
        with self._lock:
            self._jobs += 1
            number = self._jobs
        job = _Job(number, failed, work, args, Future())
        # Weakly: a strong reference would make outer -> callback -> job -> outer a cycle,
        # and keep the parsed feed (a few MB) until the cycle collector finds it.
        job.outer.add_done_callback(partial(_cancel_inner, weakref.ref(job)))
        self._dispatch(job)
        return job.outer

    def _dispatch(self, job: _Job[_T], *, again: bool = False) -> None:
        """Submit job to the current workers. RuntimeError when the pool is closed, unless
        ``again`` (a parse sent again after a kill): that one settles as CRASHED."""
        for _ in range(2):  # a pool found broken at submit is replaced once
            try:
                workers = self._current()
            except RuntimeError:
                if not again:
                    raise
                break
            try:
                inner = workers.executor.submit(_run, job.number, job.work, *job.args)
            except BrokenProcessPool:
                workers.broken = True
                continue
            except RuntimeError:  # shut down meanwhile (close)
                if not again:
                    raise
                break
            job.inner = inner
            inner.add_done_callback(partial(self._forward, workers, job))
            return
        _settle(job, job.failed(CRASHED))

    def _forward(self, workers: _Workers, job: _Job[_T], inner: Future[_T]) -> None:
        """Runs in the executor's thread (or the submitter's, if the parse was done already)."""
        if job.inner is inner:
            job.inner = None  # done: nothing to cancel, and no inner -> callback -> job cycle
        if inner.cancelled():  # close() dropped it, or the caller cancelled outer
            job.outer.cancel()
            return
        exc = inner.exception()
        if not isinstance(exc, BrokenProcessPool):
            if exc is not None:
                if job.outer.set_running_or_notify_cancel():
                    job.outer.set_exception(exc)
            else:
                _settle(job, inner.result())
            return
        workers.broken = True
        if job.number in workers.abandoned:
            _settle(job, job.failed(abandoned_error(self._time_limit)))
        elif workers.abandoned and job.resubmits < _RESUBMITS and not job.outer.done():
            job.resubmits += 1  # an innocent bystander of the kill: parse it again
            self._dispatch(job, again=True)
        else:
            _settle(job, job.failed(CRASHED))

    def close(self) -> None:
        """Wait for the parses in hand, then stop the workers (and the watchdog)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pools = [*self._retired, *([self._workers] if self._workers else [])]
        for workers in pools:  # the watchdog still kills a runaway parse meanwhile
            workers.executor.shutdown(wait=True, cancel_futures=True)
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.join()
        with self._lock:
            self._workers, self._retired = None, []

    def _current(self) -> _Workers:
        with self._lock:
            if self._closed:
                raise RuntimeError("the ParsePool is closed")
            if self._workers is not None and self._workers.broken:
                if not self._workers.abandoned:  # else the watchdog said why
                    log.warning("a parser process died; starting a new parser pool")
                # Not shutdown(wait=True): that joins the executor's thread, which may be
                # the one running the callbacks; close() waits for it.
                self._workers.executor.shutdown(wait=False, cancel_futures=True)
                self._retired.append(self._workers)
                self._workers = None
            if self._workers is None:
                board = self._context.Array("d", self._max_workers * _SLOT)
                executor = ProcessPoolExecutor(
                    max_workers=self._max_workers,
                    mp_context=self._context,
                    initializer=_join_board,
                    initargs=(board,),
                )
                self._workers = _Workers(executor, board)
            if self._watchdog is None:
                self._watchdog = threading.Thread(
                    target=self._watch, name="parse-watchdog", daemon=True
                )
                self._watchdog.start()
            return self._workers

    def _watch(self) -> None:
        """Kill the worker of any parse that has run longer than the time limit."""
        interval = min(1.0, self._time_limit / 4)
        while not self._stop.wait(interval):
            with self._lock:
                pools = [*self._retired, *([self._workers] if self._workers else [])]
            for workers in pools:
                if not workers.broken:
                    self._kill_overdue(workers)

    def _kill_overdue(self, workers: _Workers) -> None:
        now = time.monotonic()
        board = workers.board
        with board.get_lock():  # a worker cannot start or finish a parse meanwhile
            for slot in range(0, len(board), _SLOT):
                pid, job, started = int(board[slot]), int(board[slot + 1]), board[slot + 2]
                if job and now - started > self._time_limit:
                    log.warning(
                        "a parse took longer than %gs: killing parser process %d",
                        self._time_limit,
                        pid,
                    )
                    workers.abandoned.add(job)
                    board[slot + 1] = 0
                    with contextlib.suppress(ProcessLookupError):  # died by itself meanwhile
                        os.kill(pid, signal.SIGKILL)


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Have glibc's malloc serve every block of ``threshold`` bytes or more with an mmap.

    glibc starts at 128 KiB, but raises the threshold to the size of each mmapped block
    freed (up to 32 MiB): after a few feed bodies and pickled parses (50 KiB to a few MiB)
    have come and gone, the next ones come from the heap, which they fragment, and which
    keeps their pages. A fixed threshold returns each of them to the system when freed.
    Returns False, changing nothing, without glibc's mallopt or when the environment sets
    MALLOC_MMAP_THRESHOLD_ (glibc has read it already)."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


# In a worker process: its slot in the watchdog's board.
_board: Any = None
_slot = -1


def _join_board(board: Any) -> None:
    """The workers' initializer: take a free slot of the board."""
    global _board, _slot
    fix_mmap_threshold()
    # What the worker has now (the preloaded parser, shared with the forkserver and the
    # other workers) is left out of its garbage collections, which would write to each
    # object and so copy every page of them into this process.
    gc.freeze()
    with board.get_lock():
        for slot in range(0, len(board), _SLOT):
            if board[slot] == 0:
                board[slot] = os.getpid()
                _board, _slot = board, slot
                return


def _run(number: int, work: Callable[..., _T], *args: Any) -> _T:
    """In a worker: run work(*args), showing the watchdog what runs and since when."""
    board, slot = _board, _slot
    if board is None:
        return work(*args)
    with board.get_lock():
        board[slot + 1], board[slot + 2] = number, time.monotonic()
    try:
        return work(*args)
    finally:
        with board.get_lock():
            board[slot + 1] = 0


def _cancel_inner(job_ref: weakref.ref[_Job[Any]], outer: Future[Any]) -> None:
    job = job_ref()  # gone: its parse was settled, there is nothing to cancel
    inner = job.inner if job is not None else None
    if outer.cancelled() and inner is not None:
        inner.cancel()


def _settle(job: _Job[_T], result: _T) -> None:
    if job.outer.set_running_or_notify_cancel():
        job.outer.set_result(result)


def _settled(parse: Callable[[], _T]) -> Future[_T]:
    future: Future[_T] = Future()
    future.set_running_or_notify_cancel()
    try:
        future.set_result(parse())
    except Exception as exc:
        future.set_exception(exc)
    return future
