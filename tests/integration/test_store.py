"""The store against real databases: every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text

from tests.support.databases import postgres_database
from watcher.errors import StoreError
from watcher.models import AlertState, Entry, FeedConfig, FeedUpdate, NewAlert
from watcher.store import Store, open_store

T0 = datetime(2025, 8, 7, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def feed(name: str, url: str | None = None, minutes: int = 15) -> FeedConfig:
    return FeedConfig(
        name=name, url=url or f"https://{name}.example/rss", interval=minutes * MINUTE
    )


def entry(key: str, link_key: str | None = None, feed: str = "wire", **extra: object) -> Entry:
    return Entry(
        feed=feed,
        key=key,
        link_key=link_key,
        content_hash=f"hash-{key}",
        title=f"Title {key}",
        link=link_key,
        **extra,  # type: ignore[arg-type]
    )


def alert(key: str, entry_key: str, created_at: datetime = T0, target: str = "team") -> NewAlert:
    return NewAlert(
        idempotency_key=key,
        rule="sanctions",
        target=target,
        entry_key=entry_key,
        terms=("sanctions",),
        created_at=created_at,
    )


def feed_ids(store: Store, *names: str) -> dict[str, int]:
    return {state.name: state.id for state in store.sync_feeds([feed(n) for n in names], T0)}


def stored_alerts(store: Store, count: int, created: timedelta = MINUTE) -> list[int]:
    """`count` pending alerts on one entry, created `created` apart; returns their ids."""
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        tx.add_entries(wire, [entry("e1")], T0)
        tx.enqueue_alerts([alert(f"a{i}", "e1", T0 + i * created) for i in range(count)])
    by_key = {a.idempotency_key: a.id for a in store.alerts()}
    return [by_key[f"a{i}"] for i in range(count)]


# feeds


def test_new_feeds_are_stored_active_and_due_at_once(store: Store) -> None:
    states = store.sync_feeds([feed("wire", minutes=10), feed("bbc")], T0)

    assert [s.name for s in states] == ["bbc", "wire"]
    assert [s.name for s in store.feeds()] == ["bbc", "wire"]
    wire = store.feed("wire")
    assert wire is not None
    assert wire.url == "https://wire.example/rss"
    assert wire.interval == 10 * MINUTE
    assert wire.next_check_at == T0
    assert [s.name for s in store.due_feeds(T0)] == ["bbc", "wire"]
    assert store.feed("nope") is None


def test_resync_updates_interval_and_keeps_what_polling_learned(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        tx.record_poll(wire, FeedUpdate(T0, T0 + 15 * MINUTE, 200, etag='"v1"'))

    (state,) = store.sync_feeds([feed("wire", minutes=30)], T0 + MINUTE)

    assert state.interval == 30 * MINUTE
    assert state.etag == '"v1"'
    assert state.next_check_at == T0 + 15 * MINUTE


def test_changed_url_clears_validators_and_is_due_at_once(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        update = FeedUpdate(T0, T0 + 15 * MINUTE, 200, etag='"v1"', last_modified="Thu")
        tx.record_poll(wire, update)

    later = T0 + 2 * MINUTE
    (state,) = store.sync_feeds([feed("wire", url="https://new.example/rss")], later)

    assert state.id == wire
    assert state.url == "https://new.example/rss"
    assert (state.etag, state.last_modified) == (None, None)
    assert state.next_check_at == later
    assert [s.name for s in store.due_feeds(later)] == ["wire"]


def test_permanent_redirect_survives_a_resync_of_the_same_config(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        update = FeedUpdate(T0, T0 + 15 * MINUTE, 200, new_url="https://moved.example/rss")
        tx.record_poll(wire, update)

    (state,) = store.sync_feeds([feed("wire")], T0 + MINUTE)

    assert state.url == "https://moved.example/rss"
    assert state.next_check_at == T0 + 15 * MINUTE


def test_removed_feed_becomes_inactive_and_keeps_its_entries(store: Store) -> None:
    ids = feed_ids(store, "wire", "bbc")
    with store.transaction() as tx:
        tx.add_entries(ids["bbc"], [entry("b1", feed="bbc")], T0)

    states = store.sync_feeds([feed("wire")], T0 + MINUTE)

    assert [s.name for s in states] == ["wire"]
    assert [s.name for s in store.feeds()] == ["wire"]
    assert [s.name for s in store.due_feeds(T0 + MINUTE)] == ["wire"]
    assert store.feed("bbc") is None
    assert store.entry_count() == 1

    back = T0 + 5 * MINUTE
    store.sync_feeds([feed("wire"), feed("bbc")], back)
    bbc = store.feed("bbc")
    assert bbc is not None
    assert (bbc.id, bbc.next_check_at) == (ids["bbc"], back)


def test_due_feeds_respects_now_and_puts_the_longest_waiting_first(store: Store) -> None:
    ids = feed_ids(store, "a", "b", "c")
    with store.transaction() as tx:
        tx.record_poll(ids["a"], FeedUpdate(T0, T0 + 10 * MINUTE, 200))
        tx.record_poll(ids["b"], FeedUpdate(T0, T0 + 5 * MINUTE, 200))
        tx.record_poll(ids["c"], FeedUpdate(T0, T0 + 20 * MINUTE, 200))

    assert store.due_feeds(T0 + 4 * MINUTE) == []
    assert [s.name for s in store.due_feeds(T0 + 5 * MINUTE)] == ["b"]
    assert [s.name for s in store.due_feeds(T0 + 30 * MINUTE)] == ["b", "a", "c"]


def test_record_poll_success_resets_errors_and_updates_validators(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        tx.record_poll(wire, FeedUpdate(T0, T0 + MINUTE, None, error="connection refused"))
    with store.transaction() as tx:
        tx.record_poll(wire, FeedUpdate(T0 + MINUTE, T0 + 3 * MINUTE, 503, error="HTTP 503"))

    failing = store.feed("wire")
    assert failing is not None
    assert (failing.error_count, failing.last_error, failing.last_status) == (2, "HTTP 503", 503)
    assert failing.last_checked_at == T0 + MINUTE
    assert failing.last_success_at is None
    assert failing.next_check_at == T0 + 3 * MINUTE

    with store.transaction() as tx:
        update = FeedUpdate(T0 + 3 * MINUTE, T0 + 18 * MINUTE, 200, etag='"e"', last_modified="M")
        tx.record_poll(wire, update)
    with store.transaction() as tx:  # a 304 gives no new validators: the old ones stay
        tx.record_poll(wire, FeedUpdate(T0 + 18 * MINUTE, T0 + 33 * MINUTE, 304))

    ok = store.feed("wire")
    assert ok is not None
    assert (ok.error_count, ok.last_error, ok.last_status) == (0, None, 304)
    assert (ok.etag, ok.last_modified) == ('"e"', "M")
    assert ok.last_success_at == ok.last_checked_at == T0 + 18 * MINUTE


def test_record_poll_follows_a_permanent_redirect(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        update = FeedUpdate(T0, T0 + MINUTE, 200, new_url="https://moved.example/rss")
        tx.record_poll(wire, update)

    state = store.feed("wire")
    assert state is not None
    assert state.url == "https://moved.example/rss"


def test_record_poll_for_an_unknown_feed_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="no feed"), store.transaction() as tx:
        tx.record_poll(12345, FeedUpdate(T0, T0 + MINUTE, 200))


def test_record_polls_writes_many_feeds_in_one_go(store: Store) -> None:
    ids = feed_ids(store, "a", "b", "c")
    with store.transaction() as tx:
        tx.record_poll(ids["b"], FeedUpdate(T0, T0 + MINUTE, 200, etag='"b"', body_hash="h"))
    with store.transaction() as tx:
        tx.record_polls(
            [
                (ids["a"], FeedUpdate(T0, T0 + 10 * MINUTE, 304, etag='"a"')),
                (ids["b"], FeedUpdate(T0, T0 + 5 * MINUTE, None, error="down")),
                (ids["c"], FeedUpdate(T0, T0 + 20 * MINUTE, 410, error="gone", disable=GONE)),
                (ids["b"], FeedUpdate(T0, T0 + 7 * MINUTE, 503, error="HTTP 503")),  # in order
            ]
        )

    a, b, c = (store.feed(name) for name in ("a", "b", "c"))
    assert a is not None
    assert b is not None
    assert c is not None
    assert (a.etag, a.error_count, a.last_status, a.next_check_at) == (
        '"a"',
        0,
        304,
        T0 + 10 * MINUTE,
    )
    assert a.last_success_at == T0
    assert (b.error_count, b.last_error, b.last_status) == (2, "HTTP 503", 503)
    assert (b.etag, b.body_hash, b.next_check_at) == ('"b"', "h", T0 + 7 * MINUTE)
    assert (c.disabled_reason, c.error_count, c.last_success_at) == (GONE, 1, None)


def test_record_polls_with_an_unknown_feed_writes_nothing(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]

    with pytest.raises(StoreError, match="no feed with id 12345"), store.transaction() as tx:
        tx.record_polls(
            [(wire, FeedUpdate(T0, T0 + MINUTE, 200)), (12345, FeedUpdate(T0, T0 + MINUTE, 200))]
        )

    state = store.feed("wire")
    assert state is not None
    assert state.last_checked_at is None


# feed health


GONE = "HTTP 410 Gone: the feed was removed"


def test_a_gone_feed_is_disabled_still_listed_and_never_due(store: Store) -> None:
    ids = feed_ids(store, "wire", "bbc")
    with store.transaction() as tx:
        update = FeedUpdate(T0, T0 + MINUTE, 410, error="HTTP 410", disable=GONE)
        tx.record_poll(ids["wire"], update)

    wire = store.feed("wire")
    assert wire is not None
    assert (wire.disabled_reason, wire.last_status, wire.error_count) == (GONE, 410, 1)
    assert [(s.name, s.disabled_reason) for s in store.feeds()] == [("bbc", None), ("wire", GONE)]
    assert [s.name for s in store.due_feeds(T0 + 60 * MINUTE)] == ["bbc"]
    assert [s.name for s in store.claim_due_feeds(T0 + 60 * MINUTE, MINUTE, "a")] == ["bbc"]

    (same,) = store.sync_feeds([feed("wire")], T0 + 60 * MINUTE)  # same URL: still gone
    assert same.disabled_reason == GONE


def test_a_changed_url_re_enables_a_disabled_feed_and_forgets_the_old_server(
    store: Store,
) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        tx.record_poll(
            wire, FeedUpdate(T0, T0 + MINUTE, 200, body_hash="b1", min_interval=60 * MINUTE)
        )
    with store.transaction() as tx:
        tx.record_poll(wire, FeedUpdate(T0, T0 + MINUTE, 410, error="HTTP 410", disable=GONE))

    later = T0 + 5 * MINUTE
    (state,) = store.sync_feeds([feed("wire", url="https://new.example/rss")], later)

    assert (state.disabled_reason, state.body_hash, state.min_interval) == (None, None, None)
    assert [s.name for s in store.due_feeds(later)] == ["wire"]


def test_a_successful_poll_of_a_disabled_feed_re_enables_it(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        tx.record_poll(wire, FeedUpdate(T0, T0 + MINUTE, 410, error="HTTP 410", disable=GONE))
    with store.transaction() as tx:  # a failure that is not a 410 leaves it disabled
        tx.record_poll(wire, FeedUpdate(T0, T0 + MINUTE, 503, error="HTTP 503"))
    disabled = store.feed("wire")
    assert disabled is not None
    assert disabled.disabled_reason == GONE

    with store.transaction() as tx:  # e.g. `watcher poll` of every feed found it back
        tx.record_poll(wire, FeedUpdate(T0, T0 + MINUTE, 200))

    back = store.feed("wire")
    assert back is not None
    assert back.disabled_reason is None
    assert [s.name for s in store.due_feeds(T0 + MINUTE)] == ["wire"]


def test_body_hash_and_min_interval_are_kept_when_a_poll_gives_none(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        update = FeedUpdate(T0, T0 + MINUTE, 200, body_hash="sha-1", min_interval=30 * MINUTE)
        tx.record_poll(wire, update)
    with store.transaction() as tx:
        tx.record_poll(wire, FeedUpdate(T0 + MINUTE, T0 + 2 * MINUTE, 304))
    with store.transaction() as tx:
        tx.record_poll(wire, FeedUpdate(T0 + 2 * MINUTE, T0 + 3 * MINUTE, None, error="down"))

    kept = store.feed("wire")
    assert kept is not None
    assert (kept.body_hash, kept.min_interval) == ("sha-1", 30 * MINUTE)

    with store.transaction() as tx:
        update = FeedUpdate(T0, T0 + MINUTE, 200, body_hash="sha-2", min_interval=90 * MINUTE)
        tx.record_poll(wire, update)
    (replaced,) = store.sync_feeds([feed("wire")], T0 + MINUTE)  # a resync keeps them
    assert (replaced.body_hash, replaced.min_interval) == ("sha-2", 90 * MINUTE)


def test_recent_new_at_remembers_the_latest_20_polls_with_new_entries(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    plus_two = timezone(timedelta(hours=2))
    polls = [T0 + i * MINUTE for i in range(25)]
    for i, checked_at in enumerate(polls):
        with store.transaction() as tx:
            update = FeedUpdate(
                checked_at.astimezone(plus_two),  # stored and returned in UTC
                checked_at + MINUTE,
                200,
                new_entries=0 if i == 24 else 1 + i % 3,
            )
            tx.record_poll(wire, update)

    state = store.feed("wire")
    assert state is not None
    assert state.recent_new_at == tuple(polls[4:24])
    assert all(at.tzinfo == UTC for at in state.recent_new_at)


# several instances, one database


def test_claimed_feeds_wait_for_record_poll_or_the_lease_to_end(store: Store) -> None:
    feed_ids(store, "a", "b", "c")
    lease = 5 * MINUTE

    first = store.claim_due_feeds(T0, lease, "one", limit=2)
    second = store.claim_due_feeds(T0, lease, "two")

    assert [s.name for s in first] == ["a", "b"]
    assert [s.name for s in second] == ["c"]
    assert store.claim_due_feeds(T0 + MINUTE, lease, "three") == []
    assert store.due_feeds(T0 + MINUTE) == []

    with store.transaction() as tx:  # "one" polled a; b was left (its poller died)
        tx.record_poll(first[0].id, FeedUpdate(T0, T0 + MINUTE, 200))
    assert [s.name for s in store.due_feeds(T0 + MINUTE)] == ["a"]
    later = T0 + lease  # the longest waiting first: b and c were due at T0, a at T0 + 1
    assert [s.name for s in store.due_feeds(later)] == ["b", "c", "a"]
    assert [s.name for s in store.claim_due_feeds(later, lease, "three")] == ["b", "c", "a"]


def test_claimed_alerts_wait_for_an_outcome_or_the_lease_to_end(store: Store) -> None:
    a0, a1, a2 = stored_alerts(store, 3, created=timedelta(0))
    lease = 5 * MINUTE

    assert [a.id for a in store.claim_due_alerts(T0, lease, "one", limit=2)] == [a0, a1]
    (other,) = store.claim_due_alerts(T0, lease, "two")
    assert (other.id, other.entry.key) == (a2, "e1")
    assert store.claim_due_alerts(T0, lease, "three") == []
    assert store.due_alerts(T0) == []

    store.mark_failed(a0, "timeout", T0 + MINUTE, T0 + MINUTE)  # due again at once
    store.mark_sent(a2, T0 + MINUTE)
    assert [a.id for a in store.claim_due_alerts(T0 + MINUTE, lease, "three")] == [a0]
    assert [a.id for a in store.claim_due_alerts(T0 + lease, lease, "four")] == [a1]
    assert store.retry_alert(a1, T0 + lease)  # retrying by hand ends a lease too
    assert [a.id for a in store.due_alerts(T0 + lease)] == [a1]


def test_two_instances_never_claim_the_same_feed_or_alert(store_url: str) -> None:
    names = [f"feed{i:02}" for i in range(40)]
    with open_store(store_url) as setup:
        (first, *_) = setup.sync_feeds([feed(name) for name in names], T0)
        with setup.transaction() as tx:
            tx.add_entries(first.id, [entry("e1")], T0)
            tx.enqueue_alerts([alert(f"a{i}", "e1") for i in range(40)])
    barrier = threading.Barrier(2, timeout=30)

    def claim_all(owner: str) -> tuple[list[str], list[str]]:
        feeds: list[str] = []
        alerts: list[str] = []
        with open_store(store_url) as store:
            barrier.wait()
            while batch := store.claim_due_feeds(T0, MINUTE, owner, limit=3):
                feeds += [state.name for state in batch]
            while claimed := store.claim_due_alerts(T0, MINUTE, owner, limit=3):
                alerts += [a.idempotency_key for a in claimed]
        return feeds, alerts

    with ThreadPoolExecutor(2) as pool:
        (feeds_a, alerts_a), (feeds_b, alerts_b) = pool.map(claim_all, ["a", "b"])

    assert sorted(feeds_a + feeds_b) == names
    assert sorted(alerts_a + alerts_b) == sorted(f"a{i}" for i in range(40))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_database()


@pytest.mark.postgres
def test_a_claim_skips_feeds_another_claim_has_locked(postgres_url: str) -> None:
    with open_store(postgres_url) as store:
        ids = feed_ids(store, "a", "b", "c")
        plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain) as other:  # a claim by another instance, mid-transaction
            other.execute("SELECT id FROM feeds WHERE id = %s FOR UPDATE", [ids["a"]])

            claimed = store.claim_due_feeds(T0, MINUTE, "mine")

            assert [s.name for s in claimed] == ["b", "c"]
            other.rollback()
        assert [s.name for s in store.claim_due_feeds(T0, MINUTE, "mine")] == ["a"]


# entries


def test_add_entries_returns_only_new_entries_in_input_order(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        first = tx.add_entries(wire, [entry("k2"), entry("k1")], T0)
    with store.transaction() as tx:
        second = tx.add_entries(wire, [entry("k3"), entry("k1"), entry("k0"), entry("k2")], T0)

    assert [e.key for e in first] == ["k2", "k1"]
    assert [e.key for e in second] == ["k3", "k0"]
    assert store.entry_count() == 4


def test_the_same_key_in_another_feed_is_a_duplicate(store: Store) -> None:
    ids = feed_ids(store, "wire", "bbc")
    with store.transaction() as tx:
        tx.add_entries(ids["wire"], [entry("story")], T0)
        assert tx.add_entries(ids["bbc"], [entry("story", feed="bbc")], T0) == []


def test_the_same_link_key_in_another_feed_is_a_duplicate(store: Store) -> None:
    ids = feed_ids(store, "wire", "bbc")
    link = "https://news.example/story"
    with store.transaction() as tx:
        tx.add_entries(ids["wire"], [entry("wire:1", link)], T0)
    with store.transaction() as tx:
        new = tx.add_entries(ids["bbc"], [entry("bbc:9", link), entry("bbc:10", None)], T0)

    assert [e.key for e in new] == ["bbc:10"]
    assert store.entry_count() == 2


def test_duplicates_within_one_batch_count(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    batch = [
        entry("k1", "L1"),
        entry("k1", "L2"),  # same key as the first
        entry("k2", "L1"),  # same link as the first
        entry("k3", "L2"),  # L2 came only with a duplicate, so this one is new
        entry("k4"),
        entry("k4"),
    ]
    with store.transaction() as tx:
        new = tx.add_entries(wire, batch, T0)

    assert [(e.key, e.link_key) for e in new] == [("k1", "L1"), ("k3", "L2"), ("k4", None)]
    assert store.entry_count() == 3


def test_add_entries_with_nothing_to_add(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        assert tx.add_entries(wire, [], T0) == []
        assert tx.enqueue_alerts([]) == 0


def test_a_large_batch_is_deduplicated_in_chunks(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    batch = [entry(f"k{i}", f"https://x.example/{i}") for i in range(1200)]
    with store.transaction() as tx:
        assert len(tx.add_entries(wire, batch[:700], T0)) == 700
    with store.transaction() as tx:
        new = tx.add_entries(wire, batch, T0)

    assert [e.key for e in new] == [e.key for e in batch[700:]]


def test_entries_come_back_whole_with_utc_datetimes(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    plus_two = timezone(timedelta(hours=2))
    original = entry(
        "k1",
        "https://x.example/1",
        summary="A <b>summary</b>",
        content="Full text — ünïcödé",
        author="Ann",
        categories=("world", "politics"),
        published=datetime(2025, 8, 7, 11, 0, tzinfo=plus_two),
        updated=T0 + MINUTE,
    )
    with store.transaction() as tx:
        tx.add_entries(wire, [original], T0)
        tx.enqueue_alerts(
            [alert("a1", "k1", created_at=datetime(2025, 8, 7, 11, 0, tzinfo=plus_two))]
        )

    (stored,) = store.alerts()
    assert stored.entry == original
    published = stored.entry.published
    assert published is not None
    assert published.tzinfo == UTC
    assert published == T0
    assert stored.created_at.tzinfo == UTC
    assert stored.created_at == T0
    assert stored.next_attempt_at == T0
    assert stored.terms == ("sanctions",)


# the outbox


def test_enqueue_alerts_skips_known_idempotency_keys(store_url: str) -> None:
    with open_store(store_url) as store:
        wire = feed_ids(store, "wire")["wire"]
        with store.transaction() as tx:
            tx.add_entries(wire, [entry("e1")], T0)
            assert tx.enqueue_alerts([alert("a1", "e1"), alert("a1", "e1")]) == 1
        with store.transaction() as tx:
            assert tx.enqueue_alerts([alert("a1", "e1"), alert("a2", "e1")]) == 1

    with open_store(store_url) as reopened:
        with reopened.transaction() as tx:
            assert tx.enqueue_alerts([alert("a1", "e1"), alert("a2", "e1")]) == 0
        assert sorted(a.idempotency_key for a in reopened.alerts()) == ["a1", "a2"]


def test_an_alert_for_an_unknown_entry_is_refused(store: Store) -> None:
    with pytest.raises(StoreError), store.transaction() as tx:
        tx.enqueue_alerts([alert("a1", "no-such-entry")])
    assert store.alerts() == []


def test_an_exception_rolls_back_entries_alerts_and_feed_state(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]

    def poll_that_crashes() -> None:
        with store.transaction() as tx:
            tx.add_entries(wire, [entry("e1")], T0)
            tx.enqueue_alerts([alert("a1", "e1")])
            tx.record_poll(wire, FeedUpdate(T0, T0 + MINUTE, 500, error="HTTP 500"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        poll_that_crashes()

    assert store.entry_count() == 0
    assert store.alerts() == []
    state = store.feed("wire")
    assert state is not None
    assert (state.error_count, state.last_checked_at) == (0, None)
    with store.transaction() as tx:  # nothing half-written blocks a retry
        assert [e.key for e in tx.add_entries(wire, [entry("e1")], T0)] == ["e1"]
        assert tx.enqueue_alerts([alert("a1", "e1")]) == 1


def test_due_alerts_are_oldest_first_limited_and_wait_for_their_time(store: Store) -> None:
    ids = stored_alerts(store, 4)

    assert [a.id for a in store.due_alerts(T0 - MINUTE)] == []
    assert [a.id for a in store.due_alerts(T0 + MINUTE)] == ids[:2]
    assert [a.id for a in store.due_alerts(T0 + 10 * MINUTE)] == ids
    assert [a.id for a in store.due_alerts(T0 + 10 * MINUTE, limit=3)] == ids[:3]
    assert all(a.entry.key == "e1" for a in store.due_alerts(T0 + 10 * MINUTE))

    store.mark_failed(ids[0], "timeout", T0 + 10 * MINUTE, T0 + 20 * MINUTE)
    store.mark_sent(ids[1], T0 + 10 * MINUTE)
    assert [a.id for a in store.due_alerts(T0 + 10 * MINUTE)] == ids[2:]
    assert [a.id for a in store.due_alerts(T0 + 20 * MINUTE)] == [ids[0], *ids[2:]]


def test_alerts_created_together_keep_their_insertion_order(store: Store) -> None:
    ids = stored_alerts(store, 3, created=timedelta(0))

    assert [a.id for a in store.due_alerts(T0)] == ids
    assert [a.id for a in store.alerts()] == ids[::-1]


def test_failures_retry_later_then_die(store: Store) -> None:
    (alert_id,) = stored_alerts(store, 1)

    store.mark_failed(alert_id, "timeout", T0 + MINUTE, T0 + 5 * MINUTE)
    (retrying,) = store.alerts()
    assert (retrying.state, retrying.attempts, retrying.last_error) == (
        AlertState.PENDING,
        1,
        "timeout",
    )
    assert retrying.next_attempt_at == T0 + 5 * MINUTE

    store.mark_failed(alert_id, "HTTP 500", T0 + 5 * MINUTE, None)
    (dead,) = store.alerts()
    assert (dead.state, dead.attempts, dead.last_error) == (AlertState.DEAD, 2, "HTTP 500")
    assert dead.next_attempt_at is None
    assert store.due_alerts(T0 + 60 * MINUTE) == []


def test_mark_sent(store: Store) -> None:
    (alert_id,) = stored_alerts(store, 1)

    store.mark_sent(alert_id, T0 + MINUTE)

    (sent,) = store.alerts(AlertState.SENT)
    assert (sent.attempts, sent.sent_at, sent.next_attempt_at) == (1, T0 + MINUTE, None)
    with pytest.raises(StoreError, match="no alert"):
        store.mark_sent(alert_id + 100, T0)


def test_retry_revives_a_dead_alert_but_not_a_sent_one(store: Store) -> None:
    dead, sent = stored_alerts(store, 2)
    store.mark_failed(dead, "refused", T0 + MINUTE, None)
    store.mark_sent(sent, T0 + MINUTE)

    later = T0 + 60 * MINUTE
    assert store.retry_alert(dead, later) is True
    assert store.retry_alert(sent, later) is False
    assert store.retry_alert(dead + sent + 100, later) is False

    (due,) = store.due_alerts(later)
    assert (due.id, due.state, due.next_attempt_at, due.attempts) == (
        dead,
        AlertState.PENDING,
        later,
        1,
    )


def test_alert_listing_and_counts_by_state(store: Store) -> None:
    assert store.alert_counts() == {AlertState.PENDING: 0, AlertState.SENT: 0, AlertState.DEAD: 0}
    a0, a1, a2, a3 = stored_alerts(store, 4)
    store.mark_sent(a0, T0 + MINUTE)
    store.mark_sent(a1, T0 + MINUTE)
    store.mark_failed(a2, "refused", T0 + MINUTE, None)

    assert store.alert_counts() == {AlertState.PENDING: 1, AlertState.SENT: 2, AlertState.DEAD: 1}
    assert [a.id for a in store.alerts()] == [a3, a2, a1, a0]
    assert [a.id for a in store.alerts(limit=2)] == [a3, a2]
    assert [a.id for a in store.alerts(AlertState.SENT)] == [a1, a0]
    assert [a.id for a in store.alerts(AlertState.DEAD)] == [a2]


# opening


def test_reopening_keeps_everything(store_url: str) -> None:
    with open_store(store_url) as store:
        wire = feed_ids(store, "wire")["wire"]
        with store.transaction() as tx:
            tx.add_entries(wire, [entry("e1", "https://x.example/1")], T0)
            tx.enqueue_alerts([alert("a1", "e1")])
            tx.record_poll(wire, FeedUpdate(T0, T0 + 15 * MINUTE, 200, etag='"v"'))
        before = (store.feeds(), store.alerts())

    with open_store(store_url) as reopened:
        assert (reopened.feeds(), reopened.alerts()) == before
        assert reopened.entry_count() == 1
        with reopened.transaction() as tx:
            assert tx.add_entries(wire, [entry("e1")], T0) == []


def test_sqlite_creates_its_folder_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "watcher.db"
    open_store(f"sqlite:///{path}").close()

    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


@pytest.mark.parametrize(
    "url",
    ["not a url", "mysql://u@localhost/db", "sqlite+nosuchdriver:///x.db"],
)
def test_a_bad_url_is_a_store_error(url: str) -> None:
    with pytest.raises(StoreError, match=r"sqlite:///path/to/watcher.db"):
        open_store(url)


def test_a_sqlite_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="cannot create the folder"):
        open_store(f"sqlite:///{tmp_path / 'file' / 'watcher.db'}")


def test_an_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match=r"cannot open the store at .*127\.0\.0\.1:1") as caught:
        open_store("postgresql+psycopg://watcher:secret@127.0.0.1:1/watcher")
    assert "secret" not in str(caught.value)


# reading entries back, notes


def test_entries_since_returns_what_was_stored_from_then_on(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    with store.transaction() as tx:
        tx.add_entries(wire, [entry("old")], T0)
    with store.transaction() as tx:
        tx.add_entries(wire, [entry("new1"), entry("new2")], T0 + 10 * MINUTE)
    assert [e.key for e in store.entries_since(T0 + MINUTE)] == ["new1", "new2"]
    assert [e.key for e in store.entries_since(T0)] == ["old", "new1", "new2"]
    assert store.entries_since(T0 + 11 * MINUTE) == []


def test_notes_are_set_replaced_and_removed(store: Store) -> None:
    assert store.note("rules") is None
    store.set_note("rules", "loaded")
    store.set_note("rules", "error: x")
    assert store.note("rules") == "error: x"
    store.set_note("rules", None)
    assert store.note("rules") is None
    store.set_note("rules", None)  # removing twice is fine


def test_held_and_batched_alerts_and_deferral(store: Store) -> None:
    wire = feed_ids(store, "wire")["wire"]
    later = T0 + 60 * MINUTE
    with store.transaction() as tx:
        tx.add_entries(wire, [entry("e1")], T0)
        held = dataclasses.replace(alert("a1", "e1"), not_before=later, batched=True)
        tx.enqueue_alerts([held, alert("a2", "e1")])
    assert [a.idempotency_key for a in store.due_alerts(T0)] == ["a2"]
    (due_later,) = [a for a in store.due_alerts(later) if a.idempotency_key == "a1"]
    assert due_later.batched

    a2 = store.due_alerts(T0)[0]
    store.defer_alerts([a2.id], T0 + 5 * MINUTE, batched=False)
    assert store.due_alerts(T0) == []
    (deferred,) = [a for a in store.due_alerts(T0 + 5 * MINUTE) if a.id == a2.id]
    assert deferred.attempts == 0  # waiting is not an attempt
    assert not deferred.batched
    store.defer_alerts([a2.id], T0 + 6 * MINUTE, batched=True)
    assert store.due_alerts(T0 + 6 * MINUTE)[0].batched


def test_sent_times_counts_one_per_message(store: Store) -> None:
    ids = stored_alerts(store, 4)
    store.mark_sent(ids[0], T0)
    store.mark_sent(ids[1], T0 + MINUTE, message_key="digest-1")
    store.mark_sent(ids[2], T0 + MINUTE, message_key="digest-1")  # the same digest
    store.mark_sent(ids[3], T0 + MINUTE)  # another message sent at the same moment
    assert store.sent_times("team", T0) == [T0, T0 + MINUTE, T0 + MINUTE]
    assert store.sent_times("team", T0 + MINUTE) == [T0 + MINUTE, T0 + MINUTE]
    assert store.sent_times("other", T0) == []


def test_an_owner_releases_its_leases_after_a_restart(store: Store) -> None:
    feed_ids(store, "a", "b")
    assert len(store.claim_due_feeds(T0, MINUTE, "host:/etc/watcher.yaml")) == 2
    assert store.claim_due_feeds(T0, MINUTE, "other") == []
    assert store.release_leases("someone-else") == 0
    assert store.release_leases("host:/etc/watcher.yaml") == 2
    assert len(store.claim_due_feeds(T0, MINUTE, "host:/etc/watcher.yaml")) == 2
