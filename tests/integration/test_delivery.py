"""Delivery as a person receives it: grouping, digests, rate limits, quiet hours, outages.

A real feed server and a real webhook server on 127.0.0.1; the clock is injected.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.sinks import Hook, WebhookSink
from watcher.config import load_config
from watcher.models import AlertState
from watcher.service import Watcher


def story(number: int, words: str = "sanctions") -> Item:
    return Item(f"g{number}", f"Story {number} on {words}", f"https://example.org/{number}", words)


def start(
    tmp_path: Path,
    feed_server: FeedServer,
    webhook_sink: WebhookSink,
    clock: FakeClock,
    *,
    rules: str = "rules:\n  - {name: sanctions, match: sanctions}\n",
    target: str = "",
) -> Watcher:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(rules, encoding="utf-8")
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "store: sqlite:///w.db\n"
        "fetch: {allow_private_networks: true, timeout: 5s}\n"
        f"feeds:\n  - {{name: Wire, url: '{feed_server.url('/wire.xml')}'}}\n"
        f"notify:\n  hook: {{url: '{webhook_sink.apprise_url()}'{target}}}\n"
        "delivery: {max_attempts: 12, retry: 1m, max_retry: 30m}\n",
        encoding="utf-8",
    )
    return Watcher(load_config(config), clock=clock, jitter=lambda: 0.0)


def titles(hooks: list[Hook]) -> list[str]:
    return [hook.json()["title"] for hook in hooks]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 8, 7, 9, 10, tzinfo=UTC))


@pytest.fixture
def watcher(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink, clock: FakeClock
) -> Iterator[Watcher]:
    with start(tmp_path, feed_server, webhook_sink, clock) as daemon:
        yield daemon


def test_several_rules_on_one_story_make_one_message(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink, clock: FakeClock
) -> None:
    rules = "rules:\n  - {name: sanctions, match: sanctions}\n  - {name: oil, match: oil}\n"
    feed_server.serve("/wire.xml", rss([story(1, "sanctions on oil"), story(2, "oil prices")]))
    with start(tmp_path, feed_server, webhook_sink, clock, rules=rules) as daemon:
        report = daemon.tick()
    assert report.delivery.sent == 3
    assert report.delivery.messages == 2
    first, second = titles(webhook_sink.delivered)
    assert first.startswith("[sanctions, oil] Story 1")
    assert second.startswith("[oil] Story 2")


def test_a_digest_rule_sends_one_message_per_window(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink, clock: FakeClock
) -> None:
    rules = "rules:\n  - {name: sanctions, match: sanctions, digest: 1h}\n"
    feed_server.serve("/wire.xml", rss([story(1), story(2)]))
    with start(tmp_path, feed_server, webhook_sink, clock, rules=rules) as daemon:
        daemon.tick()
        assert webhook_sink.attempts == []  # held until the window closes at 10:00
        feed_server.serve("/wire.xml", rss([story(3), story(2), story(1)]))
        clock.advance(timedelta(minutes=30))  # 09:40
        daemon.poll(every_feed=True)
        daemon.deliver()
        assert webhook_sink.attempts == []
        clock.advance(timedelta(minutes=20))  # 10:00
        report = daemon.deliver()
    assert (report.sent, report.messages) == (3, 1)
    (digest,) = webhook_sink.delivered
    body = digest.json()["message"]
    for number in (1, 2, 3):
        assert f"Story {number} on sanctions" in body


def test_daily_digest_at_a_local_time(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink, clock: FakeClock
) -> None:
    rules = "rules:\n  - {name: s, match: sanctions, digest: 'daily at 08:00 Europe/Kyiv'}\n"
    feed_server.serve("/wire.xml", rss([story(1)]))
    with start(tmp_path, feed_server, webhook_sink, clock, rules=rules) as daemon:
        daemon.tick()  # 09:10 UTC = 12:10 in Kyiv: next 08:00 Kyiv is 05:00 UTC tomorrow
        clock.now = datetime(2025, 8, 8, 4, 59, tzinfo=UTC)
        assert daemon.deliver().sent == 0
        clock.now = datetime(2025, 8, 8, 5, 0, tzinfo=UTC)
        assert daemon.deliver().sent == 1


def test_rate_limit_holds_the_excess_for_the_next_digest(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink, clock: FakeClock
) -> None:
    feed_server.serve("/wire.xml", rss([story(number) for number in range(5, 0, -1)]))
    with start(tmp_path, feed_server, webhook_sink, clock, target=", max: 2/hour") as daemon:
        first = daemon.tick().delivery
        assert (first.messages, first.held) == (2, 3)
        clock.advance(timedelta(minutes=59))
        assert daemon.deliver().messages == 0
        clock.advance(timedelta(minutes=1))
        later = daemon.deliver()
        assert (later.sent, later.messages) == (3, 1)  # one digest, nothing dropped
        counts = daemon.store.alert_counts()
    assert counts[AlertState.SENT] == 5
    # the feed lists stories newest first: 5 and 4 went out alone, 3, 2, 1 in the digest
    assert titles(webhook_sink.delivered)[:2] == [
        "[sanctions] Story 5 on sanctions",
        "[sanctions] Story 4 on sanctions",
    ]
    digest = webhook_sink.delivered[-1].json()["message"]
    assert all(f"Story {number} on sanctions" in digest for number in (1, 2, 3))


def test_quiet_hours_hold_alerts_until_they_end(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink, clock: FakeClock
) -> None:
    feed_server.serve("/wire.xml", rss([story(2), story(1)]))
    clock.now = datetime(2025, 8, 7, 20, 0, tzinfo=UTC)  # 23:00 in Kyiv
    quiet = ", quiet: '22:00-07:00 Europe/Kyiv'"
    with start(tmp_path, feed_server, webhook_sink, clock, target=quiet) as daemon:
        assert daemon.tick().delivery.held == 2
        clock.now = datetime(2025, 8, 8, 3, 59, tzinfo=UTC)  # 06:59 in Kyiv
        assert daemon.deliver().sent == 0
        clock.now = datetime(2025, 8, 8, 4, 0, tzinfo=UTC)
        report = daemon.deliver()
    assert (report.sent, report.messages) == (2, 1)


def test_an_hour_long_outage_loses_nothing_and_keeps_the_order(
    watcher: Watcher, feed_server: FeedServer, webhook_sink: WebhookSink, clock: FakeClock
) -> None:
    webhook_sink.status = 503
    for batch in range(5):  # 50 stories arrive during the outage, 10 at a time
        items = [story(batch * 10 + number) for number in range(10)]
        feed_server.serve("/wire.xml", rss(items))
        watcher.poll(every_feed=True)
        for _ in range(12):
            watcher.deliver()
            clock.advance(timedelta(seconds=60))
    assert watcher.store.alert_counts()[AlertState.PENDING] == 50
    assert webhook_sink.delivered == []
    webhook_sink.status = 200
    for _ in range(40):  # a tick every minute for 40 minutes after recovery
        watcher.deliver()
        clock.advance(timedelta(minutes=1))
    received = titles(webhook_sink.delivered)
    assert len(received) == 50
    assert received == [f"[sanctions] Story {n} on sanctions" for n in range(50)]
    assert watcher.store.alert_counts()[AlertState.SENT] == 50


def test_an_alert_failing_longer_than_max_age_is_dead_and_retryable(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink, clock: FakeClock
) -> None:
    feed_server.serve("/wire.xml", rss([story(1)]))
    webhook_sink.status = 500
    with start(tmp_path, feed_server, webhook_sink, clock) as daemon:
        daemon.tick()
        clock.advance(timedelta(days=2))  # max_age's default
        report = daemon.deliver()
        assert report.dead == 1
        (alert,) = daemon.store.alerts(AlertState.DEAD)
        assert alert.attempts == 2  # far fewer than max_attempts (12 here)
        webhook_sink.status = 200
        assert daemon.store.retry_alert(alert.id, clock.now)
        assert daemon.deliver().sent == 1
