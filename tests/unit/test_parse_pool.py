"""ParsePool with real worker processes: parsing, inline small bodies, dead workers, runaway
parses."""

from __future__ import annotations

import dataclasses
import gc
import os
import pickle
import platform
import signal
import threading
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.parsers import SPIN, frozen_objects, spinning_parser
from watcher import identity
from watcher.models import ParsedEntry, ParsedFeed
from watcher.parse import parse_feed
from watcher.parse_pool import CRASHED, ParsePool, abandoned_error, fix_mmap_threshold
from watcher.prepare import PreparedFeed, prepare_feed
from watcher.rules.entry_text import EntryText

DATA = Path(__file__).resolve().parent.parent / "data"


def rigged_parser(body: bytes, headers: Mapping[str, str] | None) -> ParsedFeed:
    """parse_feed, except for a few bodies that make the worker misbehave on cue."""
    if body == b"pid":
        return ParsedFeed(title=str(os.getpid()), link=None, entries=())
    if body == b"block":
        threading.Event().wait()  # until the test kills this process
    if body == b"crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if body == b"raise":
        raise ValueError("the parser broke")
    return parse_feed(body, headers)


def feed_of(entry: ParsedEntry) -> ParsedFeed:
    return ParsedFeed(title="F", link=None, entries=(entry,))


def rss_of(entry: ParsedEntry) -> bytes:
    return f"<rss><channel><item><title>{entry.title}</title></item></channel></rss>".encode()


@pytest.fixture
def pool() -> Iterator[ParsePool]:
    with ParsePool(workers=1, inline_below=0, parser=rigged_parser) as pool:
        yield pool


def test_a_worker_parses_like_parse_feed() -> None:
    body = (DATA / "rss2.xml").read_bytes()
    headers = {"Content-Type": "application/rss+xml; charset=utf-8"}

    with ParsePool(workers=2, inline_below=0) as pool:
        futures = [pool.submit(body, headers) for _ in range(4)]
        parsed = [future.result(timeout=60) for future in futures]

    assert parsed == [parse_feed(body, headers)] * 4
    assert len(parsed[0].entries) == 3


def test_small_bodies_are_parsed_in_the_calling_process() -> None:
    with ParsePool(workers=1, inline_below=16, parser=rigged_parser) as pool:
        inline = pool.parse(b"pid")
        windows = (DATA / "windows-1251.xml").read_bytes()  # larger than 16 bytes
        in_a_worker = pool.parse(windows)

    assert inline.title == str(os.getpid())
    assert in_a_worker.title == "Новости мира"


def test_the_parser_runs_in_another_process(pool: ParsePool) -> None:
    assert pool.parse(b"pid").title != str(os.getpid())


def test_a_parse_is_freed_with_its_future_without_the_cycle_collector(pool: ParsePool) -> None:
    gc.collect()
    gc.disable()  # a parse kept alive by a reference cycle would stay until it runs again
    try:
        first = pool.submit(b"pid")
        first.result(timeout=60)
        gone = weakref.ref(first)
        del first
        pool.parse(b"pid")  # the executor has let go of the first parse by now

        assert gone() is None
    finally:
        gc.enable()


def test_a_worker_leaves_what_it_started_with_out_of_its_garbage_collections() -> None:
    with ParsePool(workers=1, inline_below=0, parser=frozen_objects) as pool:
        frozen = int(pool.parse(b"count").title or "0")

    assert frozen > 10_000  # the interpreter and the preloaded parser, shared copy-on-write


def test_the_mmap_threshold_is_fixed_unless_the_environment_sets_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert fix_mmap_threshold() is (platform.libc_ver()[0] == "glibc")
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert fix_mmap_threshold() is False


def test_a_parsed_feed_survives_pickling() -> None:
    feed = parse_feed((DATA / "atom.xml").read_bytes())

    assert pickle.loads(pickle.dumps(feed)) == feed


def test_a_worker_that_dies_gives_an_error_and_a_new_pool(pool: ParsePool) -> None:
    first_worker = pool.parse(b"pid").title

    crashed = pool.parse(b"crash")
    after = pool.parse((DATA / "rss1.rdf").read_bytes())

    assert (crashed.entries, crashed.error) == ((), CRASHED)
    assert after.error is None
    assert after.title == "Old School News"
    assert pool.parse(b"pid").title != first_worker


def test_a_worker_killed_mid_parse(pool: ParsePool) -> None:
    worker = int(pool.parse(b"pid").title)
    blocked = pool.submit(b"block")
    queued = pool.submit((DATA / "rss2.xml").read_bytes())  # behind it: lost with the pool

    os.kill(worker, signal.SIGKILL)

    assert blocked.result(timeout=60).error == CRASHED
    assert queued.result(timeout=60).error == CRASHED
    assert pool.parse((DATA / "rss2.xml").read_bytes()).title == "World Wire"


def test_other_parser_errors_are_the_futures_exception(pool: ParsePool) -> None:
    with pytest.raises(ValueError, match="the parser broke"):
        pool.parse(b"raise")
    assert pool.parse((DATA / "atom.xml").read_bytes()).title == "Science & Space"


def test_closed_pool() -> None:
    before = set(threading.enumerate())
    pool = ParsePool(workers=1, inline_below=0)
    assert pool.parse((DATA / "atom.xml").read_bytes()).error is None

    pool.close()
    pool.close()

    with pytest.raises(RuntimeError, match="closed"):
        pool.submit((DATA / "atom.xml").read_bytes())
    assert set(threading.enumerate()) <= before


def test_fork_is_refused() -> None:
    with pytest.raises(ValueError, match="fork is not safe"):
        ParsePool(start_method="fork")


def test_a_worker_prepares_entries_as_the_main_thread_would() -> None:
    body = (DATA / "content-encoded.xml").read_bytes()
    parsed = parse_feed(body)

    with ParsePool(workers=1, inline_below=0) as pool:
        prepared = pool.submit_for("Wire", body).result(timeout=60)

    expected = tuple(identity.keyed(entry, "Wire") for entry in parsed.entries)
    assert prepared.entries == expected
    assert prepared.feed == dataclasses.replace(parsed, entries=())
    for index, entry in enumerate(expected):
        assert prepared.text(index) == EntryText.from_entry(entry)


def test_prepared_text_survives_the_trip_whatever_its_tokens() -> None:
    raw = ParsedEntry(guid="g", title="Putin–Trump talks", link=None, categories=("A b", "", "c"))
    prepared = prepare_feed(rss_of(raw), None, "Wire", parser=lambda body, headers: feed_of(raw))
    odd = {"title": ("a b", ""), "summary": ("",), "content": ()}  # tokens joining would lose

    assert pickle.loads(pickle.dumps(prepared)).text(0) == EntryText.from_entry(prepared.entries[0])
    packed = (tuple(odd.items()),)
    assert PreparedFeed(prepared.feed, prepared.entries, packed).text(0) == EntryText(odd)


def test_a_worker_that_dies_while_preparing_gives_an_error(pool: ParsePool) -> None:
    crashed = pool.submit_for("Wire", b"crash").result(timeout=60)

    assert (crashed.entries, crashed.feed.error) == ((), CRASHED)
    assert pool.submit_for("Wire", (DATA / "rss2.xml").read_bytes()).result(timeout=60).entries


LIMIT = 0.5  # seconds; the spinning parse never ends, so only the watchdog ends it


def test_a_runaway_parse_is_abandoned_and_its_worker_replaced() -> None:
    rss2 = (DATA / "rss2.xml").read_bytes()
    with ParsePool(workers=1, inline_below=0, parser=spinning_parser, time_limit=LIMIT) as pool:
        before = pool.parse(rss2)
        runaway = pool.submit(SPIN + rss2)
        queued = pool.submit(rss2)  # behind it on the same worker

        abandoned = runaway.result(timeout=60)
        after_it = queued.result(timeout=60)
        again = pool.parse(rss2)

    assert (abandoned.entries, abandoned.error) == ((), abandoned_error(LIMIT))
    assert abandoned.error == "parse took longer than 0.5s, abandoned"
    assert after_it == before  # parsed again by the new worker, not failed with the old one
    assert again == before


def test_a_runaway_parse_leaves_the_parses_beside_it_alone() -> None:
    bodies = [(DATA / name).read_bytes() for name in ("rss2.xml", "atom.xml", "rss1.rdf")]
    with ParsePool(workers=2, inline_below=0, parser=spinning_parser, time_limit=LIMIT) as pool:
        runaway = pool.submit_for("Hostile", SPIN + bodies[0])
        others = [pool.submit_for("Wire", body) for body in bodies * 3]

        abandoned = runaway.result(timeout=60)
        parsed = [future.result(timeout=60) for future in others]

    assert (abandoned.entries, abandoned.feed.error) == ((), abandoned_error(LIMIT))
    assert [each.feed.error for each in parsed] == [None] * len(others)
    assert [each.entries for each in parsed] == [
        prepare_feed(body, None, "Wire").entries for body in bodies * 3
    ]


def test_closing_the_pool_ends_a_runaway_parse() -> None:
    pool = ParsePool(workers=1, inline_below=0, parser=spinning_parser, time_limit=LIMIT)
    runaway = pool.submit(SPIN)

    pool.close()  # waits for the parses in hand: the watchdog ends this one

    assert runaway.result(timeout=0).error == abandoned_error(LIMIT)
