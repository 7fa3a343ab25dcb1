"""`watcher rules test`, `watcher rules backfill` and hot reload of rules, as users run them."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

from tests.support.clock import FakeClock
from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.sinks import WebhookSink
from watcher.config import load_config
from watcher.service import Watcher

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "seeds" / "sample-feed.xml"
EXAMPLE_RULES = REPO / "config" / "rules" / "example.yaml"

SANCTIONS = Item("s1", "Sanctions loom over oil buyers", "https://example.org/s1", "sanctions")
SUMMIT = Item("m1", "Summit date set in Alaska", "https://example.org/m1", "summit")
WEATHER = Item("w1", "Rain all week", "https://example.org/w1", "showers")


def watcher(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def touch_later(path: Path) -> None:
    """Make sure the edit is visible as a new modification time, whatever the fs's clock."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 2_000_000_000))


# rules test


def test_rules_test_without_config_prints_every_match_as_json() -> None:
    result = watcher("rules", "test", "--json", "--rules", str(EXAMPLE_RULES), str(SAMPLE))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 13
    for line in lines:
        assert {"rule", "title", "link", "feed", "terms"} <= line.keys()
        assert line["feed"] == "Watcher sample wire"  # the channel title of a file source
        assert line["terms"]
    pairs = {(line["rule"], line["title"]) for line in lines}
    assert (
        "sanctions",
        "Trump sets Friday deadline for new sanctions on Russia and its buyers",
    ) in (pairs)
    assert not any("jazz" in title for _, title in pairs)


def test_rules_test_human_output_highlights_terms(tmp_path: Path) -> None:
    rules = write(tmp_path / "r.yaml", "rules:\n  - {name: sanctions, match: sanctions}\n")
    result = watcher("rules", "test", "--rules", str(rules), str(SAMPLE))
    assert result.returncode == 0, result.stderr
    assert "sanctions: Trump sets Friday deadline for new *sanctions* on Russia" in result.stdout
    assert "matched: *sanctions*" in result.stdout
    assert "2 matches in 16 entries, 1 rules" in result.stderr


def test_rules_test_prints_a_match_once_per_source_and_reads_urls(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.serve("/a.xml", rss([SANCTIONS, WEATHER]))
    rules = write(tmp_path / "r.yaml", "rules:\n  - {name: sanctions, match: sanctions}\n")
    copy = write(tmp_path / "copy.xml", rss([SANCTIONS]).decode())
    result = watcher(
        "rules", "test", "--json", "--rules", str(rules), feed_server.url("/a.xml"), str(copy)
    )
    assert result.returncode == 0, result.stderr
    sources = [json.loads(line)["source"] for line in result.stdout.splitlines()]
    assert sources == [feed_server.url("/a.xml"), str(copy)]


def test_rules_test_reports_a_bad_source_and_still_tests_the_others(tmp_path: Path) -> None:
    rules = write(tmp_path / "r.yaml", "rules:\n  - {name: sanctions, match: sanctions}\n")
    result = watcher("rules", "test", "--json", "--rules", str(rules), "nope.xml", str(SAMPLE))
    assert result.returncode == 1
    assert "nope.xml: no such file" in result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_rules_test_needs_a_source() -> None:
    assert watcher("rules", "test", "--rules", str(EXAMPLE_RULES)).returncode == 2


def test_rules_test_reports_rule_errors_with_location(tmp_path: Path) -> None:
    rules = write(tmp_path / "r.yaml", "rules:\n  - {name: a, match: '(war'}\n")
    result = watcher("rules", "test", "--rules", str(rules), str(SAMPLE))
    assert result.returncode == 1
    assert f"{rules}:2:" in result.stderr


# rules on stored entries, backfill


def project(tmp_path: Path, feed_url: str, hook_url: str, rules: str) -> Path:
    write(tmp_path / "rules" / "rules.yaml", rules)
    return write(
        tmp_path / "watcher.yaml",
        "store: sqlite:///watcher.db\n"
        "defaults: {interval: 1h, tick: 1s}\n"
        "fetch: {allow_private_networks: true, timeout: 5s}\n"
        f"feeds:\n  - {{name: Wire, url: '{feed_url}', tags: [world]}}\n"
        f"notify: {{hook: '{hook_url}'}}\n",
    )


SANCTIONS_RULE = "rules:\n  - {name: sanctions, match: sanctions}\n"
BOTH_RULES = SANCTIONS_RULE + "  - {name: summit, match: summit, feeds: ['tag:world']}\n"


def test_new_rule_alerts_only_new_entries_unless_backfilled(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    feed_server.serve("/wire.xml", rss([SANCTIONS, SUMMIT, WEATHER]))
    config = project(
        tmp_path, feed_server.url("/wire.xml"), webhook_sink.apprise_url(), SANCTIONS_RULE
    )
    assert watcher("run", "--once", "--config", str(config)).returncode == 0
    assert len(webhook_sink.delivered) == 1

    write(tmp_path / "rules" / "rules.yaml", BOTH_RULES)
    assert watcher("run", "--once", "--config", str(config)).returncode == 0
    assert len(webhook_sink.delivered) == 1  # the summit entry was already stored

    stored = watcher(
        "rules", "test", "--json", "--stored", "--since", "1d", "--config", str(config)
    )
    assert stored.returncode == 0, stored.stderr
    assert sorted(json.loads(line)["rule"] for line in stored.stdout.splitlines()) == [
        "sanctions",
        "summit",
    ]

    backfill = watcher("rules", "backfill", "summit", "--since", "7d", "--config", str(config))
    assert backfill.returncode == 0, backfill.stderr
    assert "queued 1 alerts" in backfill.stdout
    assert watcher("run", "--once", "--config", str(config)).returncode == 0
    delivered = webhook_sink.delivered
    assert len(delivered) == 2
    assert SUMMIT.title in delivered[1].json()["title"]

    again = watcher("rules", "backfill", "summit", "--since", "7d", "--config", str(config))
    assert "queued 0 alerts (1 were already queued or sent)" in again.stdout
    unknown = watcher("rules", "backfill", "nope", "--config", str(config))
    assert unknown.returncode == 1
    assert "sanctions, summit" in unknown.stderr


# hot reload


def test_edited_rules_are_used_without_a_restart_and_bad_edits_keep_the_old_ones(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    feed_server.serve("/wire.xml", rss([SANCTIONS, WEATHER]))
    config_path = project(
        tmp_path, feed_server.url("/wire.xml"), webhook_sink.apprise_url(), SANCTIONS_RULE
    )
    clock = FakeClock()
    rules_file = tmp_path / "rules" / "rules.yaml"
    with Watcher(load_config(config_path), clock=clock) as daemon:
        daemon.tick()
        assert len(webhook_sink.delivered) == 1

        write(rules_file, BOTH_RULES)
        touch_later(rules_file)
        feed_server.serve("/wire.xml", rss([SUMMIT, SANCTIONS, WEATHER]))
        clock.advance(timedelta(hours=2))
        daemon.tick()
        assert [rule.name for rule in daemon.rules.rules] == ["sanctions", "summit"]
        assert SUMMIT.title in webhook_sink.delivered[-1].json()["title"]

        write(rules_file, BOTH_RULES + "  - {name: broken, match: 'war AND'}\n")
        touch_later(rules_file)
        clock.advance(timedelta(minutes=1))
        assert not daemon.reload_rules_if_changed()
        assert [rule.name for rule in daemon.rules.rules] == ["sanctions", "summit"]

    status = watcher("status", "--config", str(config_path))
    assert status.returncode == 0, status.stderr
    assert "Rules    RELOAD FAILED" in status.stdout
    assert f"{rules_file}:4:" in status.stdout
    assert "(2 rules in use since" in status.stdout


def test_sighup_reloads_the_rules_of_a_running_daemon(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    feed_server.serve("/wire.xml", rss([SANCTIONS]))
    config = project(
        tmp_path, feed_server.url("/wire.xml"), webhook_sink.apprise_url(), SANCTIONS_RULE
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    assert daemon.stderr is not None
    stderr = daemon.stderr

    def pump() -> None:
        for line in stderr:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def wait_for_line(text: str) -> None:
        while text not in lines.get(timeout=30):
            pass

    try:
        webhook_sink.wait_for(1, timeout=30)
        daemon.send_signal(signal.SIGHUP)
        wait_for_line("received SIGHUP")
        wait_for_line("rules reloaded: 1 rules")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=15)
        reader.join(timeout=10)
        stderr.close()
    assert daemon.returncode == 0


def test_a_reload_request_reads_the_whole_config_again(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    feed_server.serve("/wire.xml", rss([WEATHER]))
    feed_server.serve("/more.xml", rss([SANCTIONS]))
    config_path = project(
        tmp_path, feed_server.url("/wire.xml"), webhook_sink.apprise_url(), SANCTIONS_RULE
    )
    with Watcher(load_config(config_path), clock=FakeClock()) as daemon:
        daemon.tick()
        assert webhook_sink.delivered == []
        text = config_path.read_text(encoding="utf-8")
        config_path.write_text(
            text.replace(
                "notify:", f"  - {{name: More, url: '{feed_server.url('/more.xml')}'}}\nnotify:"
            ),
            encoding="utf-8",
        )
        daemon.reload_requested.set()  # what SIGHUP does
        daemon.tick()
        assert [feed.name for feed in daemon.store.feeds()] == ["More", "Wire"]
        (hook,) = webhook_sink.delivered
        assert SANCTIONS.title in hook.json()["title"]

        config_path.write_text("feeds: [oops", encoding="utf-8")  # a broken edit
        daemon.reload_requested.set()
        daemon.tick()
        assert [feed.name for feed in daemon.store.feeds()] == ["More", "Wire"]
