"""Exactly once to the user's eye: where a killed daemon can and cannot cause a duplicate.

Sending is at-least-once. The only window for a duplicate is after the target received a
message and before the daemon recorded it as sent; the duplicate then carries the same
alert key, so the receiver can recognise it. Everywhere else a kill loses nothing and
repeats nothing.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.projects import write_project
from tests.support.sinks import WebhookSink

STORY = Item("g1", "Sanctions take effect", "https://example.org/s", "sanctions")


def project(tmp_path: Path, feed_url: str, hook_url: str) -> Path:
    return write_project(tmp_path, {"Wire": feed_url}, hook_url, timeout="20s")


def start_once(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--once", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def run_once(config: Path) -> None:
    process = start_once(config)
    assert process.wait(timeout=60) == 0


def alert_key(headers: dict[str, str]) -> str:
    return next(value for name, value in headers.items() if name.lower() == "x-watcher-alert-key")


def test_killed_after_the_target_received_it_the_alert_is_sent_once_more_with_its_key(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    feed_server.serve("/wire.xml", rss([STORY]))
    config = project(tmp_path, feed_server.url("/wire.xml"), webhook_sink.apprise_url())
    webhook_sink.hold = threading.Event()
    daemon = start_once(config)
    webhook_sink.wait_for_attempts(1, timeout=30)  # received, not yet answered
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(timeout=15)
    webhook_sink.hold.set()
    webhook_sink.hold = None

    run_once(config)  # the restart sends it again: the one duplicate at-least-once allows
    attempts = webhook_sink.attempts
    assert len(attempts) == 2
    assert alert_key(attempts[0].headers) == alert_key(attempts[1].headers)

    run_once(config)  # recorded as sent now: never again
    assert len(webhook_sink.attempts) == 2


def test_killed_while_polling_nothing_is_lost_or_doubled(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    feed_server.serve("/wire.xml", rss([STORY]), gate="hold-feed")
    config = project(tmp_path, feed_server.url("/wire.xml"), webhook_sink.apprise_url())
    daemon = start_once(config)
    assert feed_server.wait_for_held(1, timeout=30)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(timeout=15)
    feed_server.serve("/wire.xml", rss([STORY]))

    run_once(config)
    run_once(config)
    (delivered,) = webhook_sink.delivered
    assert STORY.title in delivered.json()["title"]
