"""The store's API: feeds, entries and the alert outbox, in and out as models.py values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import ColumnElement, Engine, create_engine, event, func, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, col, select

from watcher.errors import StoreError
from watcher.models import Alert, AlertState, Entry, FeedConfig, FeedState, FeedUpdate, NewAlert
from watcher.store.tables import (
    SCHEMA_VERSION,
    AlertRow,
    EntryRow,
    FeedRow,
    MetaRow,
    as_utc,
    create_tables,
)

URL_HINT = "expected sqlite:///path/to/watcher.db or postgresql+psycopg://user@host/dbname"
SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 10
# Entries per dedup query: keeps the IN lists under every backend's bind-parameter limit.
LOOKUP_CHUNK = 500


def open_store(url: str) -> Store:
    """Open (and create if needed) the store at a SQLAlchemy URL; StoreError when it cannot."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:  # not echoed: it may hold a password
        raise StoreError(f"the store URL cannot be parsed: {URL_HINT}") from exc
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            engine = _sqlite_engine(parsed, shown)
        elif backend == "postgresql":
            engine = _postgres_engine(parsed)
        else:
            raise StoreError(f"unsupported store URL {shown}: {URL_HINT}")
    except ArgumentError as exc:  # NoSuchModuleError: an unknown driver, e.g. sqlite+foo
        raise StoreError(f"unsupported store URL {shown}: {URL_HINT}") from exc
    try:
        create_tables(engine)
        with Session(engine) as session, session.begin():
            _check_schema_version(session)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the store at {shown}: {_reason(exc)}") from exc
    except StoreError:
        engine.dispose()
        raise
    return Store(engine)


def _sqlite_engine(url: URL, shown: str) -> Engine:
    database = url.database or ":memory:"
    if database == ":memory:":
        engine = create_engine(url, poolclass=StaticPool)
    else:
        try:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for the store {shown}: {exc}") from exc
        engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    return engine


def _postgres_engine(url: URL) -> Engine:
    if url.drivername == "postgresql":  # plain postgresql:// would mean psycopg2
        url = url.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def _check_schema_version(session: Session) -> None:
    row = session.get(MetaRow, "schema_version")
    if row is None:
        session.exec(
            _insert_ignoring(session, MetaRow, "key").values(
                key="schema_version", value=str(SCHEMA_VERSION)
            )
        )
    elif row.value != str(SCHEMA_VERSION):
        raise StoreError(
            f"the store has schema version {row.value}, this watcher expects {SCHEMA_VERSION}"
            " (run `watcher db upgrade`)"
        )


def _reason(exc: SQLAlchemyError) -> str:
    """The driver's message without SQLAlchemy's SQL echo and links, on one line."""
    detail = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return " ".join(str(detail).split())


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"store: {action} failed: {_reason(exc)}") from exc


def _insert_ignoring(session: Session, row: type[Any], unique_column: str) -> Any:
    """INSERT that skips rows whose unique column already holds the value (both backends)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(row).on_conflict_do_nothing(index_elements=[unique_column])


class Store:
    """One database: feeds, entries and the alert outbox. Also a context manager."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _session(self, action: str) -> Iterator[Session]:
        with (
            _translated(action),
            Session(self._engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One database transaction: commits when the block ends, rolls back if it raises."""
        with self._session("transaction") as session:
            yield Transaction(session)

    # feeds

    def sync_feeds(self, feeds: Sequence[FeedConfig], now: datetime) -> list[FeedState]:
        """Make the stored feeds match the config; returns the configured feeds by name.

        Feeds no longer configured become inactive (their entries stay). A new feed, a feed
        configured again and a feed whose configured URL changed are due at once; a changed
        URL also drops the etag and last_modified learned from the old one.
        """
        with self._session("sync feeds") as session:
            rows = {row.name: row for row in session.exec(select(FeedRow)).all()}
            for config in feeds:
                row = rows.get(config.name)
                if row is None:
                    row = FeedRow(
                        name=config.name,
                        config_url=config.url,
                        url=config.url,
                        interval_seconds=config.interval.total_seconds(),
                        next_check_at=now,
                    )
                    session.add(row)
                    rows[config.name] = row
                elif row.config_url != config.url:
                    row.config_url = row.url = config.url
                    row.etag = row.last_modified = None
                    row.next_check_at = now
                if not row.active:
                    row.active = True
                    row.next_check_at = now
                row.interval_seconds = config.interval.total_seconds()
                row.tags = list(config.tags)
            configured = {config.name for config in feeds}
            for row in rows.values():
                if row.name not in configured:
                    row.active = False
            session.flush()
            return [_feed_state(row) for name, row in sorted(rows.items()) if name in configured]

    def feeds(self) -> list[FeedState]:
        """The active feeds, by name."""
        with self._session("list feeds") as session:
            query = select(FeedRow).where(col(FeedRow.active)).order_by(col(FeedRow.name))
            return [_feed_state(row) for row in session.exec(query)]

    def due_feeds(self, now: datetime) -> list[FeedState]:
        """Active feeds to poll at `now`, the longest waiting first."""
        with self._session("list due feeds") as session:
            query = (
                select(FeedRow)
                .where(
                    col(FeedRow.active),
                    or_(col(FeedRow.next_check_at).is_(None), col(FeedRow.next_check_at) <= now),
                )
                .order_by(col(FeedRow.next_check_at).nulls_first(), col(FeedRow.name))
            )
            return [_feed_state(row) for row in session.exec(query)]

    def feed(self, name: str) -> FeedState | None:
        """The active feed with this name; None when unknown or no longer configured."""
        with self._session("read feed") as session:
            query = select(FeedRow).where(col(FeedRow.name) == name, col(FeedRow.active))
            row = session.exec(query).first()
            return None if row is None else _feed_state(row)

    # alerts

    def due_alerts(self, now: datetime, limit: int = 100) -> list[Alert]:
        """Pending alerts whose next attempt is due, oldest first, with their entries."""
        with self._session("list due alerts") as session:
            query = (
                select(AlertRow, EntryRow)
                .join(EntryRow, col(AlertRow.entry_key) == col(EntryRow.key))
                .where(
                    col(AlertRow.state) == AlertState.PENDING.value,
                    col(AlertRow.next_attempt_at) <= now,
                )
                .order_by(col(AlertRow.created_at), col(AlertRow.id))
                .limit(limit)
            )
            return [_alert(alert, entry) for alert, entry in session.exec(query)]

    def alerts(self, state: AlertState | None = None, limit: int = 100) -> list[Alert]:
        """Alerts in any (or one) state, newest first."""
        with self._session("list alerts") as session:
            query = select(AlertRow, EntryRow).join(
                EntryRow, col(AlertRow.entry_key) == col(EntryRow.key)
            )
            if state is not None:
                query = query.where(col(AlertRow.state) == state.value)
            query = query.order_by(col(AlertRow.created_at).desc(), col(AlertRow.id).desc())
            return [_alert(alert, entry) for alert, entry in session.exec(query.limit(limit))]

    def mark_sent(self, alert_id: int, now: datetime) -> None:
        """The alert went out: it will not be sent again. Counts as an attempt."""
        with self._session("mark alert sent") as session:
            row = _alert_row(session, alert_id)
            row.state = AlertState.SENT.value
            row.attempts += 1
            row.last_attempt_at = row.sent_at = now
            row.next_attempt_at = None

    def mark_failed(
        self, alert_id: int, error: str, now: datetime, next_attempt_at: datetime | None
    ) -> None:
        """A send failed: try again at next_attempt_at, or give up (dead) when it is None."""
        with self._session("mark alert failed") as session:
            row = _alert_row(session, alert_id)
            row.attempts += 1
            row.last_error = error
            row.last_attempt_at = now
            row.next_attempt_at = next_attempt_at
            row.state = (AlertState.DEAD if next_attempt_at is None else AlertState.PENDING).value

    def retry_alert(self, alert_id: int, now: datetime) -> bool:
        """Make a dead or pending alert due now; False if there is none or it was sent.

        Attempts and the last error are kept, so the history stays honest.
        """
        with self._session("retry alert") as session:
            row = session.get(AlertRow, alert_id)
            if row is None or row.state == AlertState.SENT.value:
                return False
            row.state = AlertState.PENDING.value
            row.next_attempt_at = now
            return True

    def alert_counts(self) -> dict[AlertState, int]:
        """How many alerts are in each state (every state present, zeros included)."""
        with self._session("count alerts") as session:
            query = select(AlertRow.state, func.count()).group_by(col(AlertRow.state))
            counts = dict.fromkeys(AlertState, 0)
            for state, count in session.exec(query):
                counts[AlertState(state)] = count
            return counts

    def entry_count(self) -> int:
        with self._session("count entries") as session:
            return session.exec(select(func.count()).select_from(EntryRow)).one()

    def entries_since(self, since: datetime) -> list[Entry]:
        """Entries first stored at or after `since`, oldest first (for rules test/backfill)."""
        with self._session("list entries") as session:
            query = (
                select(EntryRow)
                .where(col(EntryRow.first_seen_at) >= since)
                .order_by(col(EntryRow.first_seen_at), col(EntryRow.id))
            )
            return [_entry(row) for row in session.exec(query)]

    # facts the daemon reports to other processes (watcher status)

    def set_note(self, key: str, value: str | None) -> None:
        """Store (or, with None, remove) a short fact under `key`, e.g. the rules' state."""
        with self._session("write note") as session:
            row = session.get(MetaRow, _NOTE_PREFIX + key)
            if value is None:
                if row is not None:
                    session.delete(row)
            elif row is None:
                session.add(MetaRow(key=_NOTE_PREFIX + key, value=value))
            else:
                row.value = value
                session.add(row)

    def note(self, key: str) -> str | None:
        with self._session("read note") as session:
            row = session.get(MetaRow, _NOTE_PREFIX + key)
            return None if row is None else row.value


_NOTE_PREFIX = "note:"


class Transaction:
    """What one poll writes, all or nothing. Get one from Store.transaction()."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def add_entries(self, feed_id: int, entries: Sequence[Entry], now: datetime) -> list[Entry]:
        """Store the entries never seen before and return them, in input order.

        An entry was seen before when its key, or its link_key (when it has one), is already
        stored for any feed or came earlier in this batch.
        """
        with _translated("add entries"):
            seen_keys, seen_links = self._stored_identities(entries)
            fresh: list[Entry] = []
            for entry in entries:
                if entry.key in seen_keys or (
                    entry.link_key is not None and entry.link_key in seen_links
                ):
                    continue
                seen_keys.add(entry.key)
                if entry.link_key is not None:
                    seen_links.add(entry.link_key)
                fresh.append(entry)
            if not fresh:
                return []
            # Ignoring conflicts keeps a concurrent writer's insert of the same key from
            # failing the whole poll; RETURNING says which rows are really ours.
            statement = _insert_ignoring(self._session, EntryRow, "key").returning(
                col(EntryRow.key)
            )
            rows = [_entry_values(feed_id, entry, now) for entry in fresh]
            inserted = set(self._session.exec(statement, params=rows).scalars())
            return [entry for entry in fresh if entry.key in inserted]

    def _stored_identities(self, entries: Sequence[Entry]) -> tuple[set[str], set[str]]:
        keys: set[str] = set()
        links: set[str] = set()
        for start in range(0, len(entries), LOOKUP_CHUNK):
            chunk = entries[start : start + LOOKUP_CHUNK]
            chunk_links = [e.link_key for e in chunk if e.link_key is not None]
            condition: ColumnElement[bool] = col(EntryRow.key).in_([e.key for e in chunk])
            if chunk_links:
                condition = or_(condition, col(EntryRow.link_key).in_(chunk_links))
            query = select(EntryRow.key, EntryRow.link_key).where(condition)
            for key, link_key in self._session.exec(query):
                keys.add(key)
                if link_key is not None:
                    links.add(link_key)
        return keys, links

    def enqueue_alerts(self, alerts: Sequence[NewAlert]) -> int:
        """Put alerts in the outbox, due at their created_at; returns how many were new.

        An alert whose idempotency_key is already stored is skipped silently.
        """
        rows: dict[str, dict[str, Any]] = {}
        for alert in alerts:
            rows.setdefault(alert.idempotency_key, _alert_values(alert))
        if not rows:
            return 0
        with _translated("enqueue alerts"):
            statement = _insert_ignoring(self._session, AlertRow, "idempotency_key").returning(
                col(AlertRow.id)
            )
            return len(self._session.exec(statement, params=list(rows.values())).all())

    def record_poll(self, feed_id: int, update: FeedUpdate) -> None:
        """Write what one poll learned about the feed."""
        with _translated("record poll"):
            row = self._session.get(FeedRow, feed_id)
            if row is None:
                raise StoreError(f"store: no feed with id {feed_id}")
            row.last_checked_at = update.checked_at
            row.next_check_at = update.next_check_at
            row.last_status = update.status
            if update.error is None:
                row.last_success_at = update.checked_at
                row.error_count = 0
                row.last_error = None
                if update.etag is not None:
                    row.etag = update.etag
                if update.last_modified is not None:
                    row.last_modified = update.last_modified
            else:
                row.error_count += 1
                row.last_error = update.error
            if update.new_url is not None:
                row.url = update.new_url
            self._session.flush()


def _alert_row(session: Session, alert_id: int) -> AlertRow:
    row = session.get(AlertRow, alert_id)
    if row is None:
        raise StoreError(f"store: no alert with id {alert_id}")
    return row


def _entry_values(feed_id: int, entry: Entry, now: datetime) -> dict[str, Any]:
    return {
        "key": entry.key,
        "link_key": entry.link_key,
        "feed_id": feed_id,
        "feed": entry.feed,
        "content_hash": entry.content_hash,
        "title": entry.title,
        "link": entry.link,
        "summary": entry.summary,
        "content": entry.content,
        "author": entry.author,
        "categories": list(entry.categories),
        "published": entry.published,
        "updated": entry.updated,
        "first_seen_at": now,
    }


def _alert_values(alert: NewAlert) -> dict[str, Any]:
    return {
        "idempotency_key": alert.idempotency_key,
        "rule": alert.rule,
        "target": alert.target,
        "entry_key": alert.entry_key,
        "terms": list(alert.terms),
        "state": AlertState.PENDING.value,
        "attempts": 0,
        "created_at": alert.created_at,
        "next_attempt_at": alert.created_at,
    }


def _feed_state(row: FeedRow) -> FeedState:
    assert row.id is not None  # rows are flushed before they are turned into values
    return FeedState(
        id=row.id,
        name=row.name,
        url=row.url,
        interval=timedelta(seconds=row.interval_seconds),
        etag=row.etag,
        last_modified=row.last_modified,
        # as_utc: sync_feeds hands back rows holding the caller's `now` as given
        next_check_at=as_utc(row.next_check_at),
        last_checked_at=as_utc(row.last_checked_at),
        last_success_at=as_utc(row.last_success_at),
        last_status=row.last_status,
        last_error=row.last_error,
        error_count=row.error_count,
    )


def _entry(row: EntryRow) -> Entry:
    return Entry(
        feed=row.feed,
        key=row.key,
        link_key=row.link_key,
        content_hash=row.content_hash,
        title=row.title,
        link=row.link,
        summary=row.summary,
        content=row.content,
        author=row.author,
        categories=tuple(row.categories),
        published=row.published,
        updated=row.updated,
    )


def _alert(row: AlertRow, entry: EntryRow) -> Alert:
    assert row.id is not None
    return Alert(
        id=row.id,
        idempotency_key=row.idempotency_key,
        rule=row.rule,
        target=row.target,
        state=AlertState(row.state),
        attempts=row.attempts,
        entry=_entry(entry),
        terms=tuple(row.terms),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
    )
