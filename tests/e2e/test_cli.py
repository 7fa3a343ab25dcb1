"""The `watcher` command as scripts use it: exit codes, error locations, listings."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.sinks import WebhookSink

REPO = Path(__file__).resolve().parents[2]


def watcher(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_check_reports_a_bad_rule_with_its_location_and_exits_1(tmp_path: Path) -> None:
    write(tmp_path / "feed.xml", rss([]).decode())
    write(tmp_path / "rules" / "a.yaml", "rules:\n  - {name: a, match: 'war AND'}\n")
    config = write(
        tmp_path / "watcher.yaml",
        "feeds:\n  - {url: file:feed.xml}\nnotify: {console: 'console://'}\n",
    )
    result = watcher("check", "--config", str(config))
    assert result.returncode == 1
    assert f"{tmp_path / 'rules' / 'a.yaml'}:2:" in result.stderr
    assert "^" in result.stderr
    assert result.stdout == ""


def test_check_reports_a_bad_config_with_its_location_and_exits_1(tmp_path: Path) -> None:
    config = write(tmp_path / "watcher.yaml", "feeds:\n  - {url: 'gopher://x'}\n")
    result = watcher("check", "--config", str(config))
    assert result.returncode == 1
    assert f"{config}:2:" in result.stderr
    assert "http(s)" in result.stderr


def test_check_reports_a_notify_url_apprise_cannot_use_with_its_location(tmp_path: Path) -> None:
    write(tmp_path / "feed.xml", rss([]).decode())
    config = write(
        tmp_path / "watcher.yaml",
        "feeds:\n  - {url: file:feed.xml}\n"
        "notify:\n  console: console://\n  hook: json://127.0.0.1:9/hook\n  team: tgram://\n",
    )
    result = watcher("check", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"{config}:6:9: error: notify target 'team': Apprise cannot use this tgram:// URL "
        "(unknown service or missing parts)\n  hint: use an Apprise URL"
    )

    write(config, config.read_text(encoding="utf-8").replace("tgram://", "tgram://1234:abc/42"))
    assert watcher("check", "--config", str(config)).returncode == 0


def test_missing_config_file_is_a_user_error(tmp_path: Path) -> None:
    result = watcher("check", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "not found" in result.stderr


def test_usage_error_exits_2() -> None:
    assert watcher("run", "--no-such-option").returncode == 2


def test_production_example_config_checks_with_its_secrets_set() -> None:
    env = {
        "WATCHER_EMAIL_URL": "mailto://watcher@127.0.0.1:2525"
        "?smtp=127.0.0.1&from=watcher@example.org&to=reader@example.org",
        "WATCHER_TEAM_CHAT_URL": "json://127.0.0.1:9/hook",
    }
    result = watcher("check", "--config", str(REPO / "config/production.example.yaml"), env=env)
    assert result.returncode == 0, result.stderr
    unset = watcher("check", "--config", str(REPO / "config/production.example.yaml"))
    assert unset.returncode == 1
    assert "WATCHER_EMAIL_URL" in unset.stderr


def test_status_feeds_and_alerts_after_a_failed_delivery(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    item = Item("g1", "New sanctions announced", "https://example.org/a", "sanctions")
    feed_server.serve("/ok.xml", rss([item]))
    feed_server.fail("/broken.xml", 503)
    write(tmp_path / "rules" / "r.yaml", "rules:\n  - {name: sanctions, match: sanctions}\n")
    config = write(
        tmp_path / "watcher.yaml",
        "store: sqlite:///watcher.db\n"
        "fetch: {allow_private_networks: true, timeout: 5s}\n"
        "feeds:\n"
        f"  - {{name: Good, url: '{feed_server.url('/ok.xml')}'}}\n"
        f"  - {{name: Broken, url: '{feed_server.url('/broken.xml')}'}}\n"
        f"notify: {{hook: '{webhook_sink.apprise_url()}'}}\n"
        "delivery: {max_attempts: 1}\n",
    )
    webhook_sink.status = 500
    run = watcher("run", "--once", "--config", str(config))
    assert run.returncode == 0, run.stderr
    assert "1 failed" in run.stderr

    feeds = watcher("feeds", "list", "--config", str(config))
    assert feeds.returncode == 0, feeds.stderr
    rows = feeds.stdout.splitlines()
    assert rows[1].startswith("Broken")  # broken feeds first
    assert "503" in rows[1]
    assert rows[2].startswith("Good")
    assert "200" in rows[2]

    dead = watcher("alerts", "list", "--state", "dead", "--config", str(config))
    assert "New sanctions announced" in dead.stdout
    assert "last error" in dead.stdout
    alert_id = dead.stdout.splitlines()[1].split()[0]

    status = watcher("status", "--config", str(config))
    assert "Feeds    2 (1 ok, 1 failing)" in status.stdout
    assert "HTTP 503 Service Unavailable" in status.stdout  # the failing feed is listed
    assert "Alerts   0 pending, 0 sent, 1 dead" in status.stdout
    assert "2 feeds polled (1 failed)" in status.stdout
    report = json.loads(watcher("status", "--json", "--config", str(config)).stdout)
    assert report["feeds"]["failing"] == 1
    assert report["feeds"]["items"][0]["name"] == "Broken"  # trouble first
    assert report["feeds"]["items"][0]["last_status"] == 503
    assert report["alerts"] == {"pending": 0, "sent": 0, "dead": 1}
    assert report["entries"] == 1
    assert report["last_tick"]["polled"] == 2
    assert report["rules"]["rules"] == 1
    assert report["schema"]["revision"] == report["schema"]["needed"]
    assert "(up to date)" in status.stdout

    assert watcher("alerts", "retry", "999", "--config", str(config)).returncode == 1
    assert watcher("alerts", "retry", "--config", str(config)).returncode == 2  # ID or --dead
    retried = watcher("alerts", "retry", "--dead", "--config", str(config))
    assert retried.returncode == 0, retried.stderr
    assert "1 dead alerts will be sent" in retried.stdout
    assert watcher("alerts", "retry", alert_id, "--config", str(config)).returncode == 0
    webhook_sink.status = 200
    assert watcher("run", "--once", "--config", str(config)).returncode == 0
    assert len(webhook_sink.delivered) == 1
    assert "0 pending, 1 sent, 0 dead" in watcher("status", "--config", str(config)).stdout


def test_alerts_list_shows_retrying_alerts_with_their_next_try(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    feed_server.serve("/ok.xml", rss([Item("g1", "New sanctions", "https://example.org/a")]))
    write(tmp_path / "rules" / "r.yaml", "rules:\n  - {name: sanctions, match: sanctions}\n")
    config = write(
        tmp_path / "watcher.yaml",
        "store: sqlite:///watcher.db\nfetch: {allow_private_networks: true}\n"
        f"feeds:\n  - {{name: Good, url: '{feed_server.url('/ok.xml')}'}}\n"
        f"notify: {{hook: '{webhook_sink.apprise_url()}'}}\n",
    )
    webhook_sink.status = 500
    assert watcher("run", "--once", "--config", str(config)).returncode == 0
    listed = watcher("alerts", "list", "--state", "retrying", "--config", str(config))
    row = listed.stdout.splitlines()[1]
    assert " retrying " in row
    assert "New sanctions" in row
    assert "last error" in listed.stdout
    pending = watcher("alerts", "list", "--state", "pending", "--config", str(config))
    assert len(pending.stdout.splitlines()) == 1  # only the header: it has been tried


def test_run_once_exits_1_with_the_store_error_when_the_poll_cannot_store(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.serve("/wire.xml", rss([Item("g1", "Sanctions", "https://example.org/a", "x")]))
    write(tmp_path / "rules" / "r.yaml", "rules:\n  - {name: sanctions, match: sanctions}\n")
    config = write(
        tmp_path / "watcher.yaml",
        "store: sqlite:///watcher.db\n"
        "fetch: {allow_private_networks: true}\n"
        f"feeds:\n  - {{name: Wire, url: '{feed_server.url('/wire.xml')}'}}\n"
        "notify: {screen: 'console://'}\n",
    )
    upgraded = watcher("db", "upgrade", "--config", str(config))
    assert upgraded.returncode == 0, upgraded.stderr
    with sqlite3.connect(tmp_path / "watcher.db") as db:  # a store broken behind watcher's back
        db.execute("ALTER TABLE entries RENAME TO entries_gone")

    run = watcher("run", "--once", "--config", str(config))

    assert run.returncode == 1
    assert "the poll stopped: store:" in run.stderr
    assert "no such table: entries" in run.stderr
    assert "Traceback" not in run.stderr
