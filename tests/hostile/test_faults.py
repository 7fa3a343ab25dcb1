"""Broken services: each ends in a clear error, a retry, and nothing lost or doubled."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.resolver import ScriptedResolver
from tests.support.sinks import SmtpSink, WebhookSink
from watcher.config import load_config
from watcher.fetch import Fetcher
from watcher.models import AlertState
from watcher.service import Watcher

STORY = Item("s1", "Sanctions take effect", "https://example.org/s1", "sanctions")


def test_an_smtp_server_that_is_down_is_retried_until_it_is_back(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    sink = SmtpSink()
    port, url = sink.port, sink.apprise_url()
    sink.close()  # the mail server is down
    feed_server.serve("/wire.xml", rss([STORY]))
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - {name: sanctions, match: sanctions}\n", encoding="utf-8"
    )
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "store: sqlite:///w.db\nfetch: {allow_private_networks: true}\n"
        f"feeds:\n  - {{name: Wire, url: '{feed_server.url('/wire.xml')}'}}\n"
        f"notify: {{mail: '{url}'}}\n",
        encoding="utf-8",
    )
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


def project(
    tmp_path: Path, feeds: dict[str, str], target: str, store: str = "sqlite:///w.db"
) -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - {name: sanctions, match: sanctions}\n", encoding="utf-8"
    )
    listed = "".join(f"  - {{name: {name}, url: '{url}'}}\n" for name, url in feeds.items())
    config = tmp_path / "watcher.yaml"
    config.write_text(
        f"store: '{store}'\nfetch: {{allow_private_networks: true, timeout: 10s}}\n"
        f"feeds:\n{listed}notify: {{hook: '{target}'}}\n",
        encoding="utf-8",
    )
    return config


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
    config = project(tmp_path, {"Wire": feed_server.url("/wire.xml")}, hook)
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
    config = project(tmp_path, feeds, webhook_sink.apprise_url())
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
