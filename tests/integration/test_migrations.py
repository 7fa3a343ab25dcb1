"""Schema revisions on real databases (SQLite and PostgreSQL), and SQLite crash safety."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text

from watcher.errors import StoreError
from watcher.models import AlertState, Entry, FeedConfig, FeedState, FeedUpdate
from watcher.store import SchemaStatus, UpgradeReport, open_store, schema_status, upgrade_store
from watcher.store.migrate import MIGRATIONS, head_revision, revisions_shipped
from watcher.store.tables import store_metadata

T0 = datetime(2025, 8, 7, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
HEAD = "0003"
REPO = Path(__file__).resolve().parents[2]

# The schema as watcher 0.1 created it with create_all, before migrations existed.
LEGACY_DDL = """
CREATE TABLE feeds (
    id {serial} NOT NULL, name VARCHAR NOT NULL, config_url TEXT NOT NULL, url TEXT NOT NULL,
    interval_seconds FLOAT NOT NULL, tags JSON NOT NULL, active BOOLEAN NOT NULL, etag TEXT,
    last_modified TEXT, next_check_at {ts}, last_checked_at {ts}, last_success_at {ts},
    last_status INTEGER, last_error TEXT, error_count INTEGER NOT NULL,
    PRIMARY KEY (id), CONSTRAINT uq_feeds_name UNIQUE (name)
);
CREATE TABLE entries (
    id {serial} NOT NULL, "key" TEXT NOT NULL, link_key TEXT, feed_id INTEGER NOT NULL,
    feed VARCHAR NOT NULL, content_hash VARCHAR NOT NULL, title TEXT NOT NULL, link TEXT,
    summary TEXT NOT NULL, content TEXT NOT NULL, author TEXT NOT NULL,
    categories JSON NOT NULL, published {ts}, updated {ts}, first_seen_at {ts} NOT NULL,
    PRIMARY KEY (id), CONSTRAINT uq_entries_key UNIQUE ("key"),
    FOREIGN KEY(feed_id) REFERENCES feeds (id)
);
CREATE INDEX ix_entries_link_key ON entries (link_key);
CREATE INDEX ix_entries_feed_id ON entries (feed_id);
CREATE TABLE alerts (
    id {serial} NOT NULL, idempotency_key VARCHAR NOT NULL, rule VARCHAR NOT NULL,
    target VARCHAR NOT NULL, entry_key TEXT NOT NULL, terms JSON NOT NULL,
    state VARCHAR NOT NULL, attempts INTEGER NOT NULL, created_at {ts} NOT NULL,
    next_attempt_at {ts}, last_attempt_at {ts}, sent_at {ts}, last_error TEXT,
    PRIMARY KEY (id), CONSTRAINT uq_alerts_idempotency_key UNIQUE (idempotency_key),
    FOREIGN KEY(entry_key) REFERENCES entries ("key")
);
CREATE INDEX ix_alerts_state_next_attempt_at ON alerts (state, next_attempt_at);
CREATE TABLE meta ("key" VARCHAR NOT NULL, value VARCHAR NOT NULL, PRIMARY KEY ("key"));
"""

LEGACY_DATA = [
    """INSERT INTO meta ("key", value) VALUES ('schema_version', '1'),
       ('note:rules', 'loaded')""",
    """INSERT INTO feeds (id, name, config_url, url, interval_seconds, tags, active, etag,
       last_modified, next_check_at, last_checked_at, last_success_at, last_status,
       last_error, error_count)
       VALUES (1, 'wire', 'https://wire.example/rss', 'https://moved.example/rss', 900,
       '["news"]', :yes, '"v1"', 'Thu', :t15, :t0, :t0, 200, NULL, 0)""",
    """INSERT INTO entries (id, "key", link_key, feed_id, feed, content_hash, title, link,
       summary, content, author, categories, published, updated, first_seen_at)
       VALUES (1, 'wire:1', 'https://x.example/1', 1, 'wire', 'h1', 'Sanctions eased',
       'https://x.example/1', 'Summary', 'Content', 'Ann', '["world"]', :t0, NULL, :t0)""",
    """INSERT INTO alerts (id, idempotency_key, rule, target, entry_key, terms, state,
       attempts, created_at, next_attempt_at, last_attempt_at, sent_at, last_error)
       VALUES (1, 'a1', 'sanctions', 'team', 'wire:1', '["sanctions"]', 'pending', 1,
       :t0, :t15, :t0, NULL, 'timeout')""",
]


def entry(key: str) -> Entry:
    return Entry(feed="wire", key=key, link_key=None, content_hash=key, title=key, link=None)


def legacy_database(url: str) -> None:
    """A database as a watcher from before migrations left it: one feed, entry and alert."""
    engine = create_engine(url)
    postgres = engine.dialect.name == "postgresql"
    if not postgres:
        Path(engine.url.database or "").parent.mkdir(parents=True, exist_ok=True)
    ddl = LEGACY_DDL.format(
        serial="SERIAL" if postgres else "INTEGER",
        ts="TIMESTAMP WITH TIME ZONE" if postgres else "DATETIME",
    )

    def stamp(at: datetime) -> str:  # as each backend stored UTC timestamps
        return at.isoformat() if postgres else at.strftime("%Y-%m-%d %H:%M:%S.%f")

    params = {"yes": True, "t0": stamp(T0), "t15": stamp(T0 + 15 * MINUTE)}
    with engine.begin() as conn:
        for statement in ddl.split(";"):
            if statement.strip():
                conn.execute(text(statement))
        for statement in LEGACY_DATA:
            conn.execute(text(statement), params)
        if postgres:  # explicit ids leave the sequences behind, as they were not then
            for table in ("feeds", "entries", "alerts"):
                conn.execute(text(f"SELECT setval('{table}_id_seq', 1)"))
    engine.dispose()


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = create_engine(store_url)
    yield engine
    engine.dispose()


def scalar(engine: Engine, query: str) -> object:
    with engine.connect() as conn:
        return conn.execute(text(query)).scalar()


def schema_differences(engine: Engine) -> list[object]:
    """What separates the database's schema from what tables.py declares."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), store_metadata()))


def test_the_head_revision_is_0003() -> None:
    assert head_revision() == HEAD


def test_the_revisions_read_from_the_files_are_alembics() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert head_revision() == scripts.get_current_head()
    assert revisions_shipped() == {
        script.revision: script.down_revision for script in scripts.walk_revisions()
    }


def test_opening_a_current_store_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    upgrade_store(url)
    probe = (
        "import sys\n"
        "from watcher.store import open_store\n"
        f"with open_store({url!r}) as store:\n"
        "    store.feeds()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))\n"
    )
    opened = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert opened.stdout.strip() == "[]"


def test_a_fresh_database_is_created_at_the_head(store_url: str, engine: Engine) -> None:
    assert schema_status(store_url) == SchemaStatus(None, HEAD)

    open_store(store_url).close()

    assert schema_status(store_url) == SchemaStatus(HEAD, HEAD)
    assert schema_differences(engine) == []
    # what a watcher from before migrations reads, to refuse this database
    assert scalar(engine, """SELECT value FROM meta WHERE "key" = 'schema_version'""") == "3"


def test_upgrade_store_creates_a_fresh_database_and_then_does_nothing(
    store_url: str, engine: Engine
) -> None:
    assert upgrade_store(store_url) == UpgradeReport(None, HEAD)
    assert upgrade_store(store_url) == UpgradeReport(HEAD, HEAD)
    assert not upgrade_store(store_url).changed
    assert schema_differences(engine) == []


def test_a_database_from_before_migrations_is_refused_then_upgraded_with_its_data(
    store_url: str, engine: Engine
) -> None:
    legacy_database(store_url)
    assert schema_status(store_url) == SchemaStatus("0001", HEAD)

    with pytest.raises(StoreError) as refused:
        open_store(store_url)
    assert str(refused.value) == (
        "the database schema is at revision 0001, this watcher needs 0003:"
        " run `watcher db upgrade` (back up first)"
    )
    assert scalar(engine, "SELECT count(*) FROM feeds") == 1  # refusing changed nothing
    assert schema_differences(engine) != []  # the new columns are missing

    report = upgrade_store(store_url)

    assert (report.from_revision, report.to_revision, report.changed) == ("0001", HEAD, True)
    assert schema_status(store_url) == SchemaStatus(HEAD, HEAD)
    assert schema_differences(engine) == []
    assert scalar(engine, """SELECT value FROM meta WHERE "key" = 'schema_version'""") == "3"
    with open_store(store_url) as store:
        assert store.feeds() == [
            FeedState(
                id=1,
                name="wire",
                url="https://moved.example/rss",
                interval=15 * MINUTE,
                etag='"v1"',
                last_modified="Thu",
                next_check_at=T0 + 15 * MINUTE,
                last_checked_at=T0,
                last_success_at=T0,
                last_status=200,
            )
        ]
        (alert,) = store.alerts()
        assert (alert.idempotency_key, alert.state, alert.attempts, alert.last_error) == (
            "a1",
            AlertState.PENDING,
            1,
            "timeout",
        )
        assert (alert.terms, alert.created_at, alert.next_attempt_at) == (
            ("sanctions",),
            T0,
            T0 + 15 * MINUTE,
        )
        assert (alert.entry.title, alert.entry.categories, alert.entry.published) == (
            "Sanctions eased",
            ("world",),
            T0,
        )
        assert store.note("rules") == "loaded"
        (wire,) = store.sync_feeds(
            [FeedConfig("wire", "https://wire.example/rss", 15 * MINUTE)], T0
        )
        assert wire.url == "https://moved.example/rss"  # the URL was not reset
        assert store.due_feeds(T0 + 15 * MINUTE) == [wire]
        with store.transaction() as tx:  # the old entry still dedups; new rows get new ids
            assert tx.add_entries(1, [alert.entry], T0) == []
            assert tx.add_entries(1, [entry("wire:2")], T0) == [entry("wire:2")]
            tx.record_poll(1, FeedUpdate(T0, T0 + 15 * MINUTE, 200, body_hash="b", new_entries=1))
        updated = store.feed("wire")
        assert updated is not None
        assert (updated.body_hash, updated.recent_new_at) == ("b", (T0,))

    assert upgrade_store(store_url) == UpgradeReport(HEAD, HEAD)


def test_a_database_from_a_newer_watcher_is_refused(store_url: str, engine: Engine) -> None:
    open_store(store_url).close()
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))

    message = (
        r"revision 0099, which this watcher does not know \(it needs 0003\):"
        " a newer watcher has upgraded it"
    )
    with pytest.raises(StoreError, match=message):
        open_store(store_url)
    with pytest.raises(StoreError, match=message):
        upgrade_store(store_url)
    assert schema_status(store_url) == SchemaStatus("0099", HEAD)


def test_tables_without_a_known_schema_version_are_refused(store_url: str, engine: Engine) -> None:
    legacy_database(store_url)
    with engine.begin() as conn:
        conn.execute(text("""UPDATE meta SET value = '7' WHERE "key" = 'schema_version'"""))

    with pytest.raises(StoreError, match="no schema revision"):
        open_store(store_url)
    with pytest.raises(StoreError, match="no schema revision"):
        upgrade_store(store_url)


def test_an_empty_database_is_created_once_when_two_processes_open_it(store_url: str) -> None:
    barrier = threading.Barrier(2, timeout=30)

    def opened(_: int) -> int:
        barrier.wait()
        with open_store(store_url) as store:
            return len(store.feeds())

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(opened, range(2))) == [0, 0]
    assert schema_status(store_url) == SchemaStatus(HEAD, HEAD)


def test_schema_status_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nothing-here.db"
    assert schema_status(f"sqlite:///{path}") == SchemaStatus(None, HEAD)
    assert not path.exists()


def test_a_bad_url_is_a_store_error_for_upgrades_too() -> None:
    with pytest.raises(StoreError, match=r"sqlite:///path/to/watcher\.db"):
        upgrade_store("mysql://u@localhost/db")
    with pytest.raises(StoreError, match=r"sqlite:///path/to/watcher\.db"):
        schema_status("not a url")


# SQLite durability: a writer killed mid-transaction leaves nothing behind

CHILD = """
import sys
from datetime import UTC, datetime
from watcher.models import Entry
from watcher.store import open_store

url, feed_id = sys.argv[1], int(sys.argv[2])
body = "x" * 4000
entries = [
    Entry(feed="wire", key=f"doomed:{i}", link_key=None, content_hash=str(i), title="t",
          link=None, content=body)
    for i in range(2000)
]
store = open_store(url)
with store.transaction() as tx:
    tx.add_entries(feed_id, entries, datetime(2025, 8, 7, tzinfo=UTC))
    print("inside the transaction", flush=True)
    sys.stdin.readline()  # never returns: the parent kills this process
"""


def test_a_sqlite_writer_killed_mid_transaction_leaves_the_database_intact(
    tmp_path: Path,
) -> None:
    path = tmp_path / "watcher.db"
    url = f"sqlite:///{path}"
    with open_store(url) as store:
        (wire,) = store.sync_feeds([FeedConfig("wire", "https://wire.example/rss", MINUTE)], T0)
        with store.transaction() as tx:
            tx.add_entries(wire.id, [entry("kept:1")], T0)

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(wire.id)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "inside the transaction\n", child.communicate()[1]
        wal = Path(f"{path}-wal")
        # the 8 MB of uncommitted rows outgrew SQLite's page cache: pages reached the disk
        assert wal.stat().st_size > 1_000_000
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL

    with open_store(url) as store:
        assert [e.key for e in store.entries_since(T0 - MINUTE)] == ["kept:1"]
        with store.transaction() as tx:  # no lock was left behind
            assert tx.add_entries(wire.id, [entry("after:1")], T0) != []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT count(*) FROM entries").fetchone() == (2,)
