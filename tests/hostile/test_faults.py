"""Broken services: each ends in a clear error, a retry, and nothing lost or doubled."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.support.clock import FakeClock
from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.sinks import SmtpSink
from watcher.config import load_config
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
