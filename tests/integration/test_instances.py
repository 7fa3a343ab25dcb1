"""Several instances on one PostgreSQL database: every feed polled once, every alert sent
once, and a killed instance's claims taken over when its leases expire.

Real processes (`watcher run`), the real PostgreSQL server, a real feed server and a real
webhook server, all on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import postgres_database
from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.sinks import WebhookSink

FEEDS = 30


@pytest.fixture
def database() -> Iterator[str]:
    yield from postgres_database()


def start(config: Path, instance: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "WATCHER_INSTANCE": instance},
    )


def stop(daemon: subprocess.Popen[bytes], how: signal.Signals = signal.SIGTERM) -> int:
    daemon.send_signal(how)
    return daemon.wait(timeout=30)


@pytest.mark.postgres
def test_three_instances_share_the_work_and_take_over_a_killed_ones_leases(
    tmp_path: Path, database: str, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    paths = [f"/feed{number:02}.xml" for number in range(FEEDS)]
    for number, path in enumerate(paths):
        story = Item(f"s{number}", f"Sanctions story {number}", f"https://example.org/{number}")
        feed_server.serve(path, rss([story]), gate="first-instance")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - {name: sanctions, match: sanctions}\n", encoding="utf-8"
    )
    feeds = "".join(
        f"  - {{name: F{number:02}, url: '{feed_server.url(path)}'}}\n"
        for number, path in enumerate(paths)
    )
    config = tmp_path / "watcher.yaml"
    config.write_text(
        f"store: '{database}'\n"
        "defaults: {interval: 1h, tick: 1s, lease: 3s}\n"
        "fetch: {allow_private_networks: true, timeout: 30s}\n"
        f"feeds:\n{feeds}"
        f"notify: {{hook: '{webhook_sink.apprise_url()}'}}\n",
        encoding="utf-8",
    )
    assert (
        subprocess.run(
            [sys.executable, "-m", "watcher", "db", "upgrade", "--config", str(config)],
            capture_output=True,
            timeout=60,
            check=False,
        ).returncode
        == 0
    )

    # A first instance claims every feed, gets stuck fetching, and is killed.
    first = start(config, "first")
    try:
        assert feed_server.wait_for_held(2, timeout=30)
    finally:
        stop(first, signal.SIGKILL)
    abandoned = {path: len(feed_server.requests_for(path)) for path in paths}
    for number, path in enumerate(paths):  # the server answers from now on
        story = Item(f"s{number}", f"Sanctions story {number}", f"https://example.org/{number}")
        feed_server.serve(path, rss([story]))
    feed_server.open_gate("first-instance")

    # Three more instances take over once the leases expire, and share the work.
    daemons = [start(config, f"instance-{number}") for number in range(3)]
    try:
        webhook_sink.wait_for(FEEDS, timeout=90)
    finally:
        codes = [stop(daemon) for daemon in daemons]
    assert codes == [0, 0, 0]

    for path in paths:  # each feed fetched exactly once after the takeover
        assert len(feed_server.requests_for(path)) == abandoned[path] + 1, path
    titles = sorted(hook.json()["title"] for hook in webhook_sink.delivered)
    assert titles == sorted(f"[sanctions] Sanctions story {n}" for n in range(FEEDS))
