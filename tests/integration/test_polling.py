"""Polling as a server sees it: the daemon against a real HTTP server, with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.parsers import SPIN, spinning_parser
from watcher.config import load_config
from watcher.models import FeedState
from watcher.parse_pool import ParsePool, abandoned_error
from watcher.service import Watcher
from watcher.status_report import gather

STORY = Item("a", "Sanctions loom", "https://example.org/a", "sanctions")
OTHER = Item("b", "Talks resume", "https://example.org/b", "talks")
INTERVAL = timedelta(minutes=15)


def make_watcher(
    tmp_path: Path, feed_server: FeedServer, clock: FakeClock, feed_extra: str = ""
) -> Watcher:
    (tmp_path / "rules").mkdir(exist_ok=True)
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "store: sqlite:///w.db\n"
        "defaults: {interval: 15m}\n"
        "fetch: {allow_private_networks: true, timeout: 5s}\n"
        f"feeds:\n  - {{name: Wire, url: '{feed_server.url('/wire.xml')}'{feed_extra}}}\n"
        "notify: {console: 'console://'}\n",
        encoding="utf-8",
    )
    return Watcher(load_config(config), clock=clock, jitter=lambda: 0.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def watcher(tmp_path: Path, feed_server: FeedServer, clock: FakeClock) -> Iterator[Watcher]:
    with make_watcher(tmp_path, feed_server, clock) as daemon:
        yield daemon


def wire(watcher: Watcher) -> FeedState:
    feed = watcher.store.feed("Wire")
    assert feed is not None
    return feed


def test_conditional_get_and_304(
    watcher: Watcher, feed_server: FeedServer, clock: FakeClock
) -> None:
    feed_server.serve(
        "/wire.xml", rss([STORY]), etag='"v1"', last_modified="Thu, 07 Aug 2025 08:00:00 GMT"
    )
    (first,) = watcher.poll(every_feed=True)
    assert first.new == 1
    clock.advance(INTERVAL)
    (second,) = watcher.poll()
    assert second.not_modified
    request = feed_server.requests_for("/wire.xml")[-1]
    assert request.headers.get("if-none-match") == '"v1"'
    assert request.headers.get("if-modified-since") == "Thu, 07 Aug 2025 08:00:00 GMT"
    assert wire(watcher).next_check_at == clock.now + INTERVAL


def test_an_unchanged_body_without_validators_is_not_parsed_again(
    watcher: Watcher, feed_server: FeedServer, clock: FakeClock
) -> None:
    feed_server.serve("/wire.xml", rss([STORY]))
    assert watcher.poll(every_feed=True)[0].new == 1
    clock.advance(INTERVAL)
    (again,) = watcher.poll()
    assert again.not_modified  # the same bytes: settled without parsing
    feed_server.serve("/wire.xml", rss([OTHER, STORY]))
    clock.advance(INTERVAL)
    assert watcher.poll()[0].new == 1


def test_ttl_and_cache_control_are_lower_bounds_on_the_interval(
    watcher: Watcher, feed_server: FeedServer, clock: FakeClock
) -> None:
    body = rss([STORY]).replace(b"<description>test</description>", b"<ttl>120</ttl>")
    feed_server.serve("/wire.xml", body)
    watcher.poll(every_feed=True)
    assert wire(watcher).next_check_at == clock.now + timedelta(hours=2)
    feed_server.serve("/wire.xml", rss([OTHER]), headers={"Cache-Control": "max-age=10800"})
    clock.advance(timedelta(hours=2))
    watcher.poll()
    assert wire(watcher).next_check_at == clock.now + timedelta(hours=3)


def test_failures_back_off_and_retry_after_is_honoured(
    watcher: Watcher, feed_server: FeedServer, clock: FakeClock
) -> None:
    feed_server.fail("/wire.xml", 500)
    watcher.poll(every_feed=True)
    assert wire(watcher).next_check_at == clock.now + INTERVAL
    clock.advance(INTERVAL)
    watcher.poll()
    assert wire(watcher).next_check_at == clock.now + 2 * INTERVAL
    assert wire(watcher).error_count == 2
    feed_server.fail("/wire.xml", 503, headers={"Retry-After": "14400"})
    clock.advance(2 * INTERVAL)
    watcher.poll()
    state = wire(watcher)
    assert state.next_check_at == clock.now + timedelta(hours=4)
    assert state.last_status == 503
    feed_server.serve("/wire.xml", rss([STORY]))
    clock.advance(timedelta(hours=4))
    assert watcher.poll()[0].new == 1
    assert wire(watcher).error_count == 0


def test_a_permanent_redirect_moves_the_feed(
    watcher: Watcher, feed_server: FeedServer, clock: FakeClock
) -> None:
    feed_server.serve("/new.xml", rss([STORY]))
    feed_server.redirect("/wire.xml", feed_server.url("/new.xml"), status=301)
    watcher.poll(every_feed=True)
    assert wire(watcher).url == feed_server.url("/new.xml")
    clock.advance(INTERVAL)
    watcher.poll()
    assert len(feed_server.requests_for("/wire.xml")) == 1  # asked the new URL directly


def test_a_gone_feed_is_disabled_with_a_visible_reason(
    watcher: Watcher, feed_server: FeedServer, clock: FakeClock
) -> None:
    feed_server.fail("/wire.xml", 410)
    (outcome,) = watcher.poll(every_feed=True)
    assert outcome.status == 410
    assert "gone" in (wire(watcher).disabled_reason or "")
    clock.advance(timedelta(days=2))
    assert watcher.poll() == []
    assert watcher.poll(every_feed=True) == []
    assert len(feed_server.requests_for("/wire.xml")) == 1
    report = gather(watcher.store)
    assert report["feeds"]["disabled"] == 1
    assert "gone" in report["feeds"]["items"][0]["disabled_reason"]


def test_adaptive_interval_follows_how_often_the_feed_publishes(
    tmp_path: Path, feed_server: FeedServer, clock: FakeClock
) -> None:
    extra = ", adaptive: true, min_interval: 5m, max_interval: 6h"
    with make_watcher(tmp_path, feed_server, clock, extra) as daemon:
        items: list[Item] = []
        for number in range(4):  # a new story every 10 minutes
            items.insert(0, Item(f"g{number}", f"Story {number}", f"https://example.org/{number}"))
            feed_server.serve("/wire.xml", rss(items))
            daemon.poll(every_feed=True)
            clock.advance(timedelta(minutes=10))
        clock.advance(timedelta(minutes=-10))
        state = daemon.store.feed("Wire")
        assert state is not None
        assert state.next_check_at == clock.now + timedelta(minutes=5)  # half the gap


def test_an_unchanged_round_records_every_feed(
    tmp_path: Path, feed_server: FeedServer, clock: FakeClock
) -> None:
    """304s, an unchanged body and a failure are settled without parsing and recorded
    together, each with its own outcome."""
    feed_server.serve("/a.xml", rss([STORY]), etag='"a"')
    feed_server.serve("/b.xml", rss([OTHER]))  # no validators: the same body comes back
    feed_server.serve("/c.xml", rss([STORY, OTHER]), etag='"c"')
    config = tmp_path / "watcher.yaml"
    feeds = "".join(
        f"  - {{name: {name}, url: '{feed_server.url(f'/{name}.xml')}'}}\n" for name in "abc"
    )
    config.write_text(
        "store: sqlite:///w.db\ndefaults: {interval: 15m}\n"
        "fetch: {allow_private_networks: true, timeout: 5s}\n"
        f"feeds:\n{feeds}notify: {{console: 'console://'}}\n",
        encoding="utf-8",
    )
    with Watcher(load_config(config), clock=clock, jitter=lambda: 0.0) as daemon:
        assert sum(outcome.new for outcome in daemon.poll(every_feed=True)) == 2
        feed_server.fail("/c.xml", 500)
        clock.advance(INTERVAL)

        outcomes = {outcome.feed: outcome for outcome in daemon.poll()}

        assert (outcomes["a"].status, outcomes["a"].not_modified) == (304, True)
        assert (outcomes["b"].status, outcomes["b"].not_modified) == (200, True)
        assert (outcomes["c"].status, outcomes["c"].error) == (
            500,
            "HTTP 500 Internal Server Error",
        )
        states = {state.name: state for state in daemon.store.feeds()}
        assert states["a"].next_check_at == states["b"].next_check_at == clock.now + INTERVAL
        assert (states["a"].last_status, states["a"].etag) == (304, '"a"')
        assert (states["c"].error_count, states["c"].last_success_at) == (1, clock.now - INTERVAL)


def test_script_and_style_text_never_reaches_the_matcher_or_the_alert(
    tmp_path: Path, feed_server: FeedServer, clock: FakeClock
) -> None:
    """feedparser's sanitizer is off (parse.py drops these elements itself)."""
    story = Item(
        "s",
        "Sanctions loom",
        "https://example.org/s",
        "<p>New sanctions</p><script>var hiddenword = 1;</script>"
        "<style>.stylishword { }</style><p>were agreed.</p>",
    )
    feed_server.serve("/wire.xml", rss([story]))
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n"
        "  - {name: sanctions, match: sanctions}\n"
        "  - {name: hidden, match: 'hiddenword OR stylishword OR var'}\n",
        encoding="utf-8",
    )
    with make_watcher(tmp_path, feed_server, clock) as daemon:
        (outcome,) = daemon.poll(every_feed=True)

        assert (outcome.new, outcome.matched_rules) == (1, ("sanctions",))
        (alert,) = daemon.store.alerts()
        assert alert.rule == "sanctions"
        assert "hiddenword" not in alert.entry.summary
        assert "stylishword" not in alert.entry.summary
        assert "were agreed" in alert.entry.summary


def test_a_runaway_parse_fails_its_feed_alone_and_the_feed_backs_off(
    tmp_path: Path, feed_server: FeedServer, clock: FakeClock
) -> None:
    (tmp_path / "rules").mkdir()
    config = tmp_path / "watcher.yaml"
    config.write_text(
        "store: sqlite:///w.db\n"
        "defaults: {interval: 15m}\n"
        "fetch: {allow_private_networks: true, timeout: 5s}\n"
        f"feeds:\n  - {{name: Wire, url: '{feed_server.url('/wire.xml')}'}}\n"
        f"  - {{name: Other, url: '{feed_server.url('/other.xml')}'}}\n"
        "notify: {console: 'console://'}\n",
        encoding="utf-8",
    )
    feed_server.serve("/wire.xml", SPIN + rss([STORY]))
    feed_server.serve("/other.xml", rss([OTHER]))
    pool = ParsePool(workers=2, inline_below=0, parser=spinning_parser, time_limit=0.5)
    with Watcher(load_config(config), clock=clock, jitter=lambda: 0.0, parser=pool) as daemon:
        outcomes = {outcome.feed: outcome for outcome in daemon.poll(every_feed=True)}

        assert outcomes["Wire"].error == "parse took longer than 0.5s, abandoned"
        assert (outcomes["Other"].error, outcomes["Other"].new) == (None, 1)
        state = wire(daemon)
        assert (state.error_count, state.last_error) == (1, abandoned_error(0.5))
        assert state.next_check_at == clock.now + INTERVAL  # backs off like any failure
        clock.advance(INTERVAL)
        daemon.poll()
        assert wire(daemon).error_count == 2
        assert wire(daemon).next_check_at == clock.now + 2 * INTERVAL

        feed_server.serve("/wire.xml", rss([STORY]))
        clock.advance(2 * INTERVAL)
        assert {outcome.feed: outcome.new for outcome in daemon.poll()}["Wire"] == 1
        assert wire(daemon).error_count == 0
