"""SIGTERM stops the daemon within 10 s even while a slow feed is being fetched, and the
feed in flight is simply polled again next time: nothing is lost."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.sinks import WebhookSink


def test_sigterm_during_a_slow_fetch_exits_within_ten_seconds(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    story = Item("s", "Sanctions take effect", "https://example.org/s", "sanctions")
    feed_server.serve("/slow.xml", rss([story]), gate="slow")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - {name: sanctions, match: sanctions}\n", encoding="utf-8"
    )
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "store: sqlite:///w.db\ndefaults: {tick: 1s}\n"
        "fetch: {allow_private_networks: true, timeout: 120s}\n"
        f"feeds:\n  - {{name: Slow, url: '{feed_server.url('/slow.xml')}'}}\n"
        f"notify: {{hook: '{webhook_sink.apprise_url()}'}}\n",
        encoding="utf-8",
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert feed_server.wait_for_held(1, timeout=30)
    finally:
        daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0

    feed_server.open_gate("slow")
    feed_server.serve("/slow.xml", rss([story]))
    once = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--once", "--config", str(config)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert once.returncode == 0
    (hook,) = webhook_sink.delivered
    assert story.title in hook.json()["title"]
