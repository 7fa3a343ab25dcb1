"""Broken services: each ends in a clear error, a retry, and nothing lost or doubled."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from tests.support.clock import FakeClock
from tests.support.databases import POSTGRES_HOST, POSTGRES_PORT, postgres_database
from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.projects import write_project
from tests.support.resolver import ScriptedResolver
from tests.support.sinks import SmtpSink, WebhookSink
from tests.support.tcp_proxy import TcpProxy
from watcher.config import load_config
from watcher.fetch import Fetcher
from watcher.models import AlertState
from watcher.service import TickReport, Watcher
from watcher.store import engines

STORY = Item("s1", "Sanctions take effect", "https://example.org/s1", "sanctions")


def test_an_smtp_server_that_is_down_is_retried_until_it_is_back(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    sink = SmtpSink()
    port, url = sink.port, sink.apprise_url()
    sink.close()  # the mail server is down
    feed_server.serve("/wire.xml", rss([STORY]))
    config = write_project(tmp_path, {"Wire": feed_server.url("/wire.xml")}, url)
    clock = FakeClock()
    with Watcher(load_config(config), clock=clock, jitter=lambda: 0.0) as daemon:
        assert daemon.tick().delivery.retrying == 1
        (alert,) = daemon.store.alerts()
        assert alert.state is AlertState.PENDING
        assert alert.last_error  # a clear reason, kept for `watcher alerts list`

        back = SmtpSink(port)  # the mail server is back on its port
        try:
            clock.advance(timedelta(minutes=1))
            assert daemon.deliver().sent == 1
            clock.advance(timedelta(hours=1))
            daemon.tick()
            (message,) = back.messages
        finally:
            back.close()
    assert STORY.title in message["Subject"]


# --- helpers for the faults below ---

WEEK = timedelta(days=7)
OTHER = Item("o1", "Sanctions on shipping", "https://example.org/o1", "sanctions")
BIG = Item("b1", "Sanctions widen", "https://example.org/b1", "sanctions " + "x" * 100_000)


def catches_up(daemon: Watcher, clock: FakeClock, wait: timedelta, *, stored: int) -> None:
    """After ``wait`` one tick, without error, stores the entry the failure kept out and
    sends its alert; a week on (every retry due) the store holds ``stored`` entries."""
    clock.advance(wait)
    report = daemon.tick()
    assert report.error is None
    assert (report.new_entries, report.delivery.sent) == (1, 1)
    clock.advance(WEEK)
    daemon.tick()
    assert daemon.store.entry_count() == stored


def in_background(daemon: Watcher) -> Future[TickReport]:
    """Run one tick on another thread, so the test can break things while it runs."""
    executor = ThreadPoolExecutor(max_workers=1)
    try:
        return executor.submit(daemon.tick)
    finally:
        executor.shutdown(wait=False)


@contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Another connection (another program) holds SQLite's write lock meanwhile."""
    holder = sqlite3.connect(database, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


def titles(sink: WebhookSink) -> list[str]:
    """The stories delivered, one title per message received (in sorted order)."""
    return sorted(hook.json()["title"].removeprefix("[sanctions] ") for hook in sink.delivered)


def keys(sink: WebhookSink) -> list[str]:
    return [
        value
        for hook in sink.delivered
        for name, value in hook.headers.items()
        if name.lower() == "x-watcher-alert-key"
    ]


# --- a webhook that hangs ---


def test_a_webhook_that_hangs_times_out_and_is_delivered_once_when_it_answers(
    tmp_path: Path,
    feed_server: FeedServer,
    webhook_sink: WebhookSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.serve("/wire.xml", rss([STORY]))
    hook = webhook_sink.apprise_url() + "?rto=0.5&cto=2"  # Apprise's read timeout: 0.5 s
    config = write_project(tmp_path, {"Wire": feed_server.url("/wire.xml")}, hook)
    webhook_sink.hold = held = threading.Event()  # takes the request, never answers
    clock = FakeClock()
    with Watcher(load_config(config), clock=clock, jitter=lambda: 0.0) as daemon:
        report = daemon.tick()
        assert report.delivery.retrying == 1
        assert len(webhook_sink.wait_for_attempts(1)) == 1
        (alert,) = daemon.store.alerts()
        assert alert.state is AlertState.PENDING
        assert alert.last_error
        assert f"alert {alert.id} to hook failed (attempt 1)" in caplog.text

        clock.advance(timedelta(seconds=30))  # before the retry is due: nothing is sent
        assert daemon.tick().delivery.sent == 0
        assert len(webhook_sink.attempts) == 1

        webhook_sink.hold = None  # the service answers again
        held.set()
        clock.advance(timedelta(minutes=1))
        assert daemon.tick().delivery.sent == 1
        clock.advance(WEEK)
        daemon.tick()
        (sent,) = daemon.store.alerts()
        assert sent.state is AlertState.SENT
    assert titles(webhook_sink) == [STORY.title]
    assert len(webhook_sink.attempts) == 2


# --- DNS ---


def test_a_feed_host_that_does_not_resolve_backs_off_while_other_feeds_go_on(
    tmp_path: Path,
    feed_server: FeedServer,
    webhook_sink: WebhookSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.serve("/wire.xml", rss([STORY]))
    feed_server.serve("/other.xml", rss([OTHER]))
    port = feed_server.base_url.rsplit(":", 1)[1]
    feeds = {
        "Wire": f"http://wire.test:{port}/wire.xml",
        "Broken": f"http://feed.invalid:{port}/other.xml",
    }
    resolver = ScriptedResolver({"wire.test": [["127.0.0.1"]]})  # feed.invalid: no answer
    config = write_project(tmp_path, feeds, webhook_sink.apprise_url())
    clock = FakeClock()
    fetcher = Fetcher(resolver=resolver)
    with Watcher(load_config(config), clock=clock, fetcher=fetcher, jitter=lambda: 0.0) as daemon:
        outcomes = {outcome.feed: outcome for outcome in daemon.tick().polled}
        problem = "cannot resolve feed.invalid: Name or service not known"
        assert outcomes["Broken"].error == problem
        assert outcomes["Wire"].new == 1
        assert f"feed Broken failed: {problem}" in caplog.text
        first = daemon.store.feed("Broken")
        assert first is not None
        assert first.error_count == 1
        assert first.last_error == problem
        assert first.next_check_at == clock.now + timedelta(minutes=15)

        assert first.next_check_at is not None
        clock.now = first.next_check_at  # still failing: the wait doubles
        daemon.tick()
        second = daemon.store.feed("Broken")
        assert second is not None
        assert second.error_count == 2
        assert second.next_check_at == clock.now + timedelta(minutes=30)

        resolver.set("feed.invalid", ["127.0.0.1"])  # DNS works again
        assert second.next_check_at is not None
        clock.now = second.next_check_at
        outcomes = {outcome.feed: outcome for outcome in daemon.tick().polled}
        assert outcomes["Broken"].new == 1
        recovered = daemon.store.feed("Broken")
        assert recovered is not None
        assert (recovered.error_count, recovered.last_error) == (0, None)
        clock.advance(WEEK)
        daemon.tick()
    assert titles(webhook_sink) == sorted([STORY.title, OTHER.title])
    assert len(set(keys(webhook_sink))) == 2


# --- the database ---


def test_a_locked_sqlite_database_stops_the_tick_and_the_next_tick_catches_up(
    tmp_path: Path,
    feed_server: FeedServer,
    webhook_sink: WebhookSink,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(engines, "SQLITE_BUSY_TIMEOUT_MS", 300)  # wait 0.3 s, not 10 s
    feed_server.serve("/wire.xml", rss([STORY]), gate="wire")
    config = write_project(
        tmp_path, {"Wire": feed_server.url("/wire.xml")}, webhook_sink.apprise_url()
    )
    clock = FakeClock()
    with Watcher(load_config(config), clock=clock, jitter=lambda: 0.0) as daemon:
        running = in_background(daemon)
        assert feed_server.wait_for_held(1)  # the feed is claimed and being fetched
        with write_lock(tmp_path / "w.db"):  # another program writes for a long time
            feed_server.open_gate("wire")
            report = running.result(timeout=60)
            assert report.error is not None
            assert "database is locked" in report.error
            assert "tick failed, the store is not usable" in caplog.text
            assert daemon.tick().error is not None  # still locked: this tick fails too

        assert daemon.store.entry_count() == 0  # nothing half-written
        # the next tick after the lock is gone
        catches_up(daemon, clock, timedelta(seconds=5), stored=1)
    assert titles(webhook_sink) == [STORY.title]


@pytest.mark.postgres
@pytest.mark.parametrize("when", ["between ticks", "while polling"])
def test_postgresql_going_away_stops_the_tick_and_the_next_tick_catches_up(
    tmp_path: Path,
    feed_server: FeedServer,
    webhook_sink: WebhookSink,
    caplog: pytest.LogCaptureFixture,
    when: str,
) -> None:
    with contextmanager(postgres_database)() as direct_url:
        proxy = TcpProxy(POSTGRES_HOST, POSTGRES_PORT)
        try:
            url = direct_url.replace(f":{POSTGRES_PORT}/", f":{proxy.port}/")
            feeds = {"Wire": feed_server.url("/wire.xml")}
            config = write_project(tmp_path, feeds, webhook_sink.apprise_url(), store=url)
            feed_server.serve("/wire.xml", rss([STORY]))
            clock = FakeClock()
            with Watcher(load_config(config), clock=clock, jitter=lambda: 0.0) as daemon:
                assert daemon.tick().delivery.sent == 1

                feed_server.serve("/wire.xml", rss([OTHER, STORY]), gate="wire")
                clock.advance(timedelta(minutes=16))
                if when == "between ticks":
                    proxy.stop()
                    report = daemon.tick()
                else:
                    running = in_background(daemon)
                    assert feed_server.wait_for_held(1)  # claimed, being fetched
                    proxy.stop()  # the server goes away in the middle of the poll
                    feed_server.open_gate("wire")
                    report = running.result(timeout=60)
                assert report.error is not None
                assert "tick failed, the store is not usable" in caplog.text

                proxy.start()  # back on the same address
                feed_server.open_gate("wire")
                catches_up(daemon, clock, timedelta(seconds=5), stored=2)
        finally:
            proxy.close()
    assert titles(webhook_sink) == sorted([STORY.title, OTHER.title])
    assert len(set(keys(webhook_sink))) == 2


class PageCap:
    """SQLITE_FULL on demand: every SQLite connection the store checks out may grow the
    file only to `pages` pages (None: no cap). max_page_count is per connection, so it is
    set each time a connection is handed out."""

    def __init__(self) -> None:
        self.pages: int | None = None

    def apply(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            limit = 2**31 if self.pages is None else self.pages
            dbapi_connection.execute(f"PRAGMA max_page_count = {limit}")


@contextmanager
def page_cap() -> Iterator[PageCap]:
    cap = PageCap()
    event.listen(Pool, "checkout", cap.apply)
    try:
        yield cap
    finally:
        event.remove(Pool, "checkout", cap.apply)


def page_count(database: Path) -> int:
    with closing(sqlite3.connect(database)) as connection:
        (count,) = connection.execute("PRAGMA page_count").fetchone()
        return int(count)


def test_a_full_disk_loses_nothing_stored_and_polling_resumes_when_space_is_back(
    tmp_path: Path,
    feed_server: FeedServer,
    webhook_sink: WebhookSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed_server.serve("/wire.xml", rss([STORY]))
    config = write_project(
        tmp_path, {"Wire": feed_server.url("/wire.xml")}, webhook_sink.apprise_url()
    )
    clock = FakeClock()
    with page_cap() as cap, Watcher(load_config(config), clock=clock, jitter=lambda: 0.0) as daemon:
        assert daemon.tick().delivery.sent == 1

        cap.pages = page_count(tmp_path / "w.db")  # the disk is full from now on
        feed_server.serve("/wire.xml", rss([BIG, STORY]))
        clock.advance(timedelta(minutes=16))
        report = daemon.tick()
        errors = [report.error, *(outcome.error for outcome in report.polled)]
        assert any("database or disk is full" in (error or "") for error in errors), errors
        assert "database or disk is full" in caplog.text
        assert daemon.store.entry_count() == 1  # what was stored is still there
        (kept,) = daemon.store.alerts()
        assert kept.state is AlertState.SENT

        cap.pages = None  # space is back
        catches_up(daemon, clock, timedelta(minutes=16), stored=2)
    assert titles(webhook_sink) == sorted([STORY.title, BIG.title])
