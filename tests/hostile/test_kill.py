"""The process killed at any point of a poll: nothing lost, no alert doubled.

`watcher run --once` runs in a subprocess against a real feed server and webhook, stops
dead at a named point (tests/support/killable.py), is SIGKILLed there and restarted. After
the restart every entry is stored once and every alert delivered once. (A kill after the
target accepted a message and before it is recorded is the one documented duplicate:
tests/e2e/test_crash_delivery.py.)
"""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.killable import POINTS
from tests.support.projects import write_project
from tests.support.sinks import WebhookSink
from watcher.models import AlertState
from watcher.store import open_store

REPO = Path(__file__).resolve().parents[2]
STORIES = [
    Item("k1", "Sanctions take effect", "https://example.org/k1", "sanctions"),
    Item("k2", "New sanctions on oil", "https://example.org/k2", "sanctions"),
    Item("k3", "Weather: sunny", "https://example.org/k3", "no match"),
]
WAIT = 60.0


def project(tmp_path: Path, feed_url: str, hook_url: str) -> Path:
    return write_project(tmp_path, {"Wire": feed_url}, hook_url, timeout="20s")


def first_line(process: subprocess.Popen[str]) -> str:
    """The first line the process prints, waited for at most WAIT seconds."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=WAIT).strip()
    except queue.Empty:
        raise AssertionError(f"the process did not get there within {WAIT:g} s") from None


def kill_at(config: Path, point: str) -> None:
    command = ["run", "--once", "--config", str(config)]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.killable", point, *command],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert first_line(process) == f"PAUSED {point}"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=WAIT)
        assert process.stdout is not None
        process.stdout.close()


def run_once(config: Path) -> None:
    process = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--once", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert process.returncode == 0, process.stderr


@pytest.mark.parametrize("point", list(POINTS))
def test_killed_at_any_point_of_a_poll_nothing_is_lost_or_doubled(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink, point: str
) -> None:
    feed_server.serve("/wire.xml", rss(STORIES))
    config = project(tmp_path, feed_server.url("/wire.xml"), webhook_sink.apprise_url())

    kill_at(config, point)
    before = len(webhook_sink.delivered)
    run_once(config)  # the restart
    run_once(config)  # and once more: nothing left to do, nothing done twice

    with open_store(f"sqlite:///{tmp_path / 'w.db'}") as store:
        assert store.entry_count() == len(STORIES)
        alerts = store.alerts()
        assert len(alerts) == 2
        assert {alert.state for alert in alerts} == {AlertState.SENT}
    delivered = sorted(hook.json()["title"] for hook in webhook_sink.delivered)
    assert delivered == sorted(f"[sanctions] {story.title}" for story in STORIES[:2])
    assert before == (1 if point == "first alert recorded" else 0)
