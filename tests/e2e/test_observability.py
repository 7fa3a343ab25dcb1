"""A running daemon is observable: Prometheus metrics, /healthz, JSON logs without secrets."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.sinks import WebhookSink

SECRET = "hunter2-s3cret-t0ken"


def test_metrics_health_and_redacted_json_logs(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    feed_server.serve("/wire.xml", rss([Item("s", "New sanctions", "https://example.org/s")]))
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - {name: sanctions, match: sanctions}\n", encoding="utf-8"
    )
    hook = webhook_sink.apprise_url().replace("json://", f"json://watcher:{SECRET}@")
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "store: sqlite:///w.db\ndefaults: {tick: 1s}\nfetch: {allow_private_networks: true}\n"
        "metrics: {listen: '127.0.0.1:0'}\n"
        f"feeds:\n  - {{name: Wire, url: '{feed_server.url('/wire.xml')}'}}\n"
        f"notify: {{hook: '{hook}'}}\n",
        encoding="utf-8",
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--log-format", "json", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert daemon.stderr is not None
    stderr = daemon.stderr
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        for line in stderr:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def wait_for(pattern: str) -> re.Match[str]:
        while True:
            line = lines.get(timeout=30)
            seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found

    try:
        port = int(wait_for(r"metrics on http://127\.0\.0\.1:(\d+)/metrics").group(1))
        webhook_sink.wait_for(1, timeout=30)
        wait_for(r"tick: 1 feeds polled")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'watcher_polls_total{feed="Wire",outcome="ok"} 1.0' in metrics
        assert 'watcher_rule_matches_total{rule="sanctions"} 1.0' in metrics
        assert 'watcher_entries_total{kind="new"} 1.0' in metrics
        assert re.search(r'watcher_deliveries_total\{outcome="sent",target="hook"\} 1\.0', metrics)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200, health.text
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
        reader.join(timeout=10)
        stderr.close()
    while not lines.empty():
        seen.append(lines.get())
    assert daemon.returncode == 0
    records = [json.loads(line) for line in seen if line.startswith("{")]
    assert records
    assert all({"timestamp", "level", "event"} <= record.keys() for record in records)
    assert SECRET not in "".join(seen)
