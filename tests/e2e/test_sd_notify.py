"""The daemon speaks systemd's notify protocol: READY after the first tick, STATUS,
watchdog heartbeats, STOPPING on SIGTERM. systemd is played by a real datagram socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    yield sock, path
    sock.close()


def receive_until(sock: socket.socket, wanted: str) -> list[str]:
    """Every message up to and including the first that contains `wanted`."""
    seen = []
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if wanted in message:
            return seen


def test_ready_status_watchdog_and_stopping(
    tmp_path: Path, feed_server: FeedServer, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, path = notify_socket
    feed_server.serve("/wire.xml", rss([Item("g", "Quiet day", "https://example.org/q")]))
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "store: sqlite:///w.db\ndefaults: {tick: 1s}\nfetch: {allow_private_networks: true}\n"
        f"feeds:\n  - {{name: Wire, url: '{feed_server.url('/wire.xml')}'}}\n"
        "notify: {console: 'console://'}\n",
        encoding="utf-8",
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"},
    )
    try:
        first = receive_until(sock, "READY=1")
        assert "STATUS=1 feeds (0 failing), 0 alerts pending" in first[-1]
        assert "WATCHDOG=1" in first[-1]
        receive_until(sock, "WATCHDOG=1")  # the next tick beats again
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
    assert "STOPPING=1" in "".join(receive_until(sock, "STOPPING=1"))
    assert daemon.returncode == 0
