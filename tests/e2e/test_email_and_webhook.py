"""The daemon end to end: a real feed server, a real SMTP server, a real webhook server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from tests.support.clock import FakeClock
from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.sinks import SmtpSink, WebhookSink
from watcher.config import load_config
from watcher.models import AlertState
from watcher.service import Watcher

SANCTIONS = Item(
    guid="wire-1",
    title="Washington weighs sanctions on buyers of Russian oil",
    link="https://example.org/news/sanctions-oil",
    description="New sanctions could hit countries that keep importing Russian crude.",
)
WEATHER = Item(
    guid="wire-2",
    title="Sunny weekend ahead for the coast",
    link="https://example.org/news/weather",
    description="Forecasters expect clear skies and light winds.",
)
SANCTIONS_AGAIN = Item(
    guid="wire-1",  # same story, re-published with a tracking link
    title="Washington weighs sanctions on buyers of Russian oil",
    link="https://example.org/news/sanctions-oil?utm_source=rss&utm_medium=feed",
    description="New sanctions could hit countries that keep importing Russian crude.",
)
SANCTIONS_FRIDAY = Item(
    guid="wire-3",
    title="Sanctions deadline set for Friday",
    link="https://example.org/news/sanctions-friday",
    description="The measures take effect at the end of the week unless talks succeed.",
)


def write_config(tmp_path: Path, feed_url: str, target_url: str, tick: str = "1s") -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "rules.yaml").write_text(
        "rules:\n  - {name: sanctions, match: sanctions, notify: [alerts]}\n", encoding="utf-8"
    )
    path = tmp_path / "watcher.yaml"
    path.write_text(
        f"store: sqlite:///state/watcher.db\n"
        f"defaults: {{interval: 1h, tick: {tick}}}\n"
        f"fetch: {{timeout: 5s, allow_private_networks: true}}\n"
        f"feeds:\n  - {{name: Test wire, url: '{feed_url}'}}\n"
        f"notify:\n  alerts: '{target_url}'\n",
        encoding="utf-8",
    )
    return path


def watcher_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "watcher", *args]


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        watcher_command("run", "--once", "--config", str(config)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_matching_story_arrives_by_email_exactly_once(
    tmp_path: Path, feed_server: FeedServer, smtp_sink: SmtpSink
) -> None:
    feed_server.serve("/wire.xml", rss([SANCTIONS, WEATHER]))
    config = write_config(tmp_path, feed_server.url("/wire.xml"), smtp_sink.apprise_url())

    run_once(config)
    (first,) = smtp_sink.messages
    assert SANCTIONS.title in first["Subject"]
    body = first.get_body(("plain", "html"))
    assert body is not None
    assert SANCTIONS.link in body.get_content()
    assert "reader@example.org" in first["To"]

    # The feed gains a duplicate of the first story (same guid, tracking link) and a new story.
    feed_server.serve("/wire.xml", rss([SANCTIONS_FRIDAY, SANCTIONS_AGAIN, WEATHER]))
    run_once(config)
    messages = smtp_sink.messages
    assert len(messages) == 2
    assert SANCTIONS_FRIDAY.title in messages[1]["Subject"]

    # A restart sends nothing again.
    run_once(config)
    assert len(smtp_sink.messages) == 2


def test_webhook_failure_is_retried_later_and_delivered_once(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    feed_server.serve("/wire.xml", rss([SANCTIONS, WEATHER]))
    config = load_config(
        write_config(tmp_path, feed_server.url("/wire.xml"), webhook_sink.apprise_url())
    )
    clock = FakeClock()
    webhook_sink.status = 500
    with Watcher(config, clock=clock) as watcher:
        report = watcher.tick()
        assert report.delivery.retrying == 1
        assert len(webhook_sink.attempts) == 1
        (alert,) = watcher.store.alerts()
        assert alert.state is AlertState.PENDING
        assert alert.attempts == 1
        assert alert.last_error

        clock.advance(timedelta(seconds=30))  # before the first retry is due
        watcher.tick()
        assert len(webhook_sink.attempts) == 1

        webhook_sink.status = 200
        clock.advance(timedelta(minutes=2))
        assert watcher.tick().delivery.sent == 1
        (hook,) = webhook_sink.delivered
        payload = hook.json()
        assert SANCTIONS.title in payload["title"]
        assert SANCTIONS.link in payload["message"]

        clock.advance(timedelta(hours=2))  # the feed is polled again: same entries, no alert
        watcher.tick()
        assert len(webhook_sink.attempts) == 2
        (alert,) = watcher.store.alerts()
        assert alert.state is AlertState.SENT


def test_daemon_delivers_then_stops_cleanly_on_sigterm(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    feed_server.serve("/wire.xml", rss([SANCTIONS, WEATHER]))
    config = write_config(tmp_path, feed_server.url("/wire.xml"), webhook_sink.apprise_url())
    daemon = subprocess.Popen(
        watcher_command("run", "--config", str(config)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        webhook_sink.wait_for(1, timeout=30)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=15)
    assert daemon.returncode == 0, stderr
    assert "received SIGTERM, stopping" in stderr

    # The daemon's work is committed: a restart (run --once) sends nothing new.
    run_once(config)
    assert len(webhook_sink.attempts) == 1
