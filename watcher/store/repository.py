"""The store's API: feeds, entries and the alert outbox, in and out as models.py values."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from watcher.errors import StoreError
from watcher.models import Alert, AlertState, Entry, FeedConfig, FeedState, FeedUpdate, NewAlert
from watcher.store.engines import (
    is_sqlite_memory,
    migration_engine,
    parse_url,
    reason,
    shown,
    store_engine,
)
from watcher.store.migrate import needs_creating, upgrade_engine
from watcher.store.tables import AlertRow, EntryRow, FeedRow, MetaRow, as_utc

# Entries per dedup query: keeps the IN lists under every backend's bind-parameter limit.
LOOKUP_CHUNK = 500
# Polls that stored new entries, remembered per feed (for adaptive intervals).
RECENT_NEW_LIMIT = 20


def open_store(url: str) -> Store:
    """Open the store at a SQLAlchemy URL; StoreError when it cannot.

    An empty database is created at the current schema revision. One at an older revision
    is refused (`watcher db upgrade` is a step the user takes, after a backup), and so is
    one a newer watcher has upgraded.
    """
    parsed = parse_url(url)
    engine = store_engine(parsed)
    try:
        if needs_creating(engine):
            if is_sqlite_memory(parsed):  # another engine would see another database
                upgrade_engine(engine)
            else:
                creator = migration_engine(parsed)
                try:
                    upgrade_engine(creator)
                finally:
                    creator.dispose()
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the store at {shown(parsed)}: {reason(exc)}") from exc
    except StoreError:
        engine.dispose()
        raise
    return Store(engine)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"store: {action} failed: {reason(exc)}") from exc


def _insert_ignoring(connection: Connection, row: type[Any], unique_column: str) -> Any:
    """INSERT that skips rows whose unique column already holds the value (both backends).

    A Core statement on the table: executed with many rows it is one executemany, without
    the ORM's bulk machinery (about half the cost per row).
    """
    dialect = connection.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(row.__table__).on_conflict_do_nothing(index_elements=[unique_column])


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
        """One database transaction: commits when the block ends, rolls back if it raises.

        A Core connection, not an ORM Session: a Transaction only runs Core statements, and
        a Session's set-up and commit cost about 0.6 ms of CPU per transaction (one per feed
        with new entries).
        """
        with _translated("transaction"), self._engine.begin() as connection:
            yield Transaction(connection)

    # feeds

    def sync_feeds(self, feeds: Sequence[FeedConfig], now: datetime) -> list[FeedState]:
        """Make the stored feeds match the config; returns the configured feeds by name.

        Feeds no longer configured become inactive (their entries stay). A new feed, a feed
        configured again and a feed whose configured URL changed are due at once; a changed
        URL also drops what was learned from the old one (validators, body hash, the
        server's minimum interval) and re-enables a feed disabled as gone.
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
                    row.etag = row.last_modified = row.body_hash = None
                    row.min_interval_seconds = None
                    row.disabled_reason = None
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
        """The configured feeds, by name, disabled ones included."""
        with self._session("list feeds") as session:
            query = select(FeedRow).where(col(FeedRow.active)).order_by(col(FeedRow.name))
            return [_feed_state(row) for row in session.exec(query)]

    def due_feeds(self, now: datetime) -> list[FeedState]:
        """Feeds to poll at `now`, the longest waiting first.

        Not those no longer configured, disabled, or leased to an instance (claim_due_feeds).
        """
        with self._session("list due feeds") as session:
            query = select(FeedRow).where(_feed_due(now)).order_by(*_FEED_ORDER)
            return [_feed_state(row) for row in session.exec(query)]

    def claim_due_feeds(
        self, now: datetime, lease: timedelta, owner: str, limit: int = 100
    ) -> list[FeedState]:
        """Due feeds (as due_feeds), leased to `owner` until now + lease, the longest waiting first.

        While the lease holds, no other caller gets these feeds, be it another Store in this
        process or another instance on the same database; Transaction.record_poll ends the
        lease. A lease left to expire (an instance that died mid-poll) lets another owner
        claim the feed again.
        """
        with self._session("claim due feeds") as session:
            due = select(FeedRow.id).where(_feed_due(now)).order_by(*_FEED_ORDER).limit(limit)
            statement = (
                update(FeedRow)
                .where(col(FeedRow.id).in_(_skip_locked(session, due).scalar_subquery()))
                .values(lease_owner=owner, lease_until=now + lease)
                .returning(FeedRow)
                .execution_options(synchronize_session=False)
            )
            states = [_feed_state(row) for row in session.exec(statement).scalars()]
            # RETURNING promises no order
            return sorted(
                states, key=lambda s: (s.next_check_at is not None, s.next_check_at or now, s.name)
            )

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
                .where(_alert_due(now))
                .order_by(*_ALERT_ORDER)
                .limit(limit)
            )
            return [_alert(alert, entry) for alert, entry in session.exec(query)]

    def release_leases(self, owner: str) -> int:
        """End every lease `owner` holds: an instance restarted after a crash takes its own
        unfinished feeds and alerts back at once instead of waiting for the leases to expire.
        Returns how many rows were released."""
        with self._session("release leases") as session:
            released = 0
            for table in (FeedRow, AlertRow):
                statement = (
                    update(table)
                    .where(col(table.lease_owner) == owner)
                    .values(lease_owner=None, lease_until=None)
                    .returning(col(table.id))
                )
                released += len(session.execute(statement).all())
            return released

    def claim_due_alerts(
        self, now: datetime, lease: timedelta, owner: str, limit: int = 100
    ) -> list[Alert]:
        """Due alerts (as due_alerts), leased to `owner` until now + lease, oldest first.

        mark_sent and mark_failed end the lease; as with feeds, an expired one can be
        claimed by another owner.
        """
        with self._session("claim due alerts") as session:
            due = select(AlertRow.id).where(_alert_due(now)).order_by(*_ALERT_ORDER).limit(limit)
            statement = (
                update(AlertRow)
                .where(col(AlertRow.id).in_(_skip_locked(session, due).scalar_subquery()))
                .values(lease_owner=owner, lease_until=now + lease)
                .returning(col(AlertRow.id))
                .execution_options(synchronize_session=False)
            )
            ids = list(session.exec(statement).scalars())
            if not ids:
                return []
            query = (
                select(AlertRow, EntryRow)
                .join(EntryRow, col(AlertRow.entry_key) == col(EntryRow.key))
                .where(col(AlertRow.id).in_(ids))
                .order_by(*_ALERT_ORDER)
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

    def mark_sent(self, alert_id: int, now: datetime, message_key: str | None = None) -> None:
        """The alert went out (in the message `message_key`): it will not be sent again.
        Counts as an attempt."""
        with self._session("mark alert sent") as session:
            row = _alert_row(session, alert_id)
            row.message_key = message_key or row.idempotency_key
            row.state = AlertState.SENT.value
            row.attempts += 1
            row.last_attempt_at = row.sent_at = now
            row.next_attempt_at = None
            row.lease_owner = row.lease_until = None

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
            row.lease_owner = row.lease_until = None

    def defer_alerts(self, alert_ids: Sequence[int], until: datetime, *, batched: bool) -> None:
        """Hold pending alerts until `until` without counting an attempt (a target that is
        down, quiet hours, a rate limit). `batched` makes them go out as one digest."""
        if not alert_ids:
            return
        with self._session("defer alerts") as session:
            rows = session.exec(
                select(AlertRow).where(
                    col(AlertRow.id).in_(alert_ids),
                    col(AlertRow.state) == AlertState.PENDING.value,
                )
            )
            for row in rows:
                row.next_attempt_at = until
                row.batched = row.batched or batched
                row.lease_owner = row.lease_until = None
                session.add(row)

    def sent_times(self, target: str, since: datetime) -> list[datetime]:
        """When messages went to `target` since `since`: one time per message (the alerts
        of one digest share their message key)."""
        with self._session("read send times") as session:
            query = (
                select(AlertRow.sent_at, AlertRow.message_key)
                .where(
                    col(AlertRow.target) == target,
                    col(AlertRow.state) == AlertState.SENT.value,
                    col(AlertRow.sent_at) >= since,
                )
                .distinct()
            )
            times = (as_utc(when) for when, _ in session.exec(query))
            return sorted(when for when in times if when is not None)

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
            row.lease_owner = row.lease_until = None
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
_FEED_ORDER = (col(FeedRow.next_check_at).nulls_first(), col(FeedRow.name))
_ALERT_ORDER = (col(AlertRow.created_at), col(AlertRow.id))


def _feed_due(now: datetime) -> ColumnElement[bool]:
    return and_(
        col(FeedRow.active),
        col(FeedRow.disabled_reason).is_(None),
        or_(col(FeedRow.next_check_at).is_(None), col(FeedRow.next_check_at) <= now),
        or_(col(FeedRow.lease_until).is_(None), col(FeedRow.lease_until) <= now),
    )


def _alert_due(now: datetime) -> ColumnElement[bool]:
    return and_(
        col(AlertRow.state) == AlertState.PENDING.value,
        col(AlertRow.next_attempt_at) <= now,
        or_(col(AlertRow.lease_until).is_(None), col(AlertRow.lease_until) <= now),
    )


def _skip_locked(session: Session, due: SelectOfScalar[Any]) -> SelectOfScalar[Any]:
    """PostgreSQL: lock the rows about to be leased, skipping those a concurrent claim holds.

    SQLite needs nothing: the claim is one UPDATE, and SQLite runs one writer at a time.
    """
    if session.get_bind().dialect.name == "postgresql":
        return due.with_for_update(skip_locked=True)
    return due


class Transaction:
    """What one poll writes, all or nothing. Get one from Store.transaction()."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

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
            table = EntryRow.__table__  # type: ignore[attr-defined]
            statement = _insert_ignoring(self._connection, EntryRow, "key").returning(table.c.key)
            rows = [_entry_values(feed_id, entry, now) for entry in fresh]
            inserted = set(self._connection.execute(statement, rows).scalars())
            return [entry for entry in fresh if entry.key in inserted]

    def _stored_identities(self, entries: Sequence[Entry]) -> tuple[set[str], set[str]]:
        keys: set[str] = set()
        links: set[str] = set()
        for start in range(0, len(entries), LOOKUP_CHUNK):
            chunk = entries[start : start + LOOKUP_CHUNK]
            chunk_links = [e.link_key for e in chunk if e.link_key is not None]
            parameters = {"keys": [e.key for e in chunk], "links": chunk_links}
            for key, link_key in self._connection.execute(_STORED_IDENTITIES, parameters):
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
            table = AlertRow.__table__  # type: ignore[attr-defined]
            statement = _insert_ignoring(self._connection, AlertRow, "idempotency_key").returning(
                table.c.id
            )
            return len(self._connection.execute(statement, list(rows.values())).all())

    def record_poll(self, feed_id: int, update: FeedUpdate) -> None:
        """Write what one poll learned about the feed, and end its lease if it had one.

        update.disable disables the feed (due_feeds skips it until its URL changes); a
        successful poll without it re-enables the feed. None in body_hash and min_interval
        keeps the stored value.
        """
        self.record_polls([(feed_id, update)])

    def record_polls(self, updates: Sequence[tuple[int, FeedUpdate]]) -> None:
        """record_poll for many feeds: one SELECT and one executemany UPDATE for them all.

        A feed listed twice gets its updates in order.
        """
        if not updates:
            return
        with _translated("record poll"):
            ids = list(dict.fromkeys(feed_id for feed_id, _ in updates))
            rows: dict[int, dict[str, Any]] = {}
            connection = self._connection
            for start in range(0, len(ids), LOOKUP_CHUNK):
                chunk = {"ids": ids[start : start + LOOKUP_CHUNK]}
                rows.update(
                    (row.id, dict(row._mapping)) for row in connection.execute(_POLLED, chunk)
                )
            for feed_id, poll in updates:
                if feed_id not in rows:
                    raise StoreError(f"store: no feed with id {feed_id}")
                _apply_poll(rows[feed_id], poll)
            params = [
                {"_id": row["id"], **{name: row[name] for name in _POLL_COLUMNS}}
                for row in rows.values()
            ]
            connection.execute(_RECORD_POLL, params)


# The stored (key, link_key) of entries with one of these keys or link keys. One statement,
# compiled once: the lists travel as expanding parameters, not as literals built into a new
# statement for every feed (which cost about 0.1 s of CPU per 10,000 entries).
_STORED_IDENTITIES = sa_select(col(EntryRow.key), col(EntryRow.link_key)).where(
    or_(
        col(EntryRow.key).in_(bindparam("keys", expanding=True)),
        col(EntryRow.link_key).in_(bindparam("links", expanding=True)),
    )
)

# What record_polls reads and writes of a feed's row.
_POLL_COLUMNS = (
    "last_checked_at",
    "next_check_at",
    "last_status",
    "last_success_at",
    "error_count",
    "last_error",
    "etag",
    "last_modified",
    "url",
    "disabled_reason",
    "body_hash",
    "min_interval_seconds",
    "recent_new_at",
    "lease_owner",
    "lease_until",
)

_FEEDS = FeedRow.__table__  # type: ignore[attr-defined]
# Built once (statements are cheap to run from the compiled cache, not to build).
_POLLED = sa_select(_FEEDS.c.id, *(_FEEDS.c[name] for name in _POLL_COLUMNS)).where(
    _FEEDS.c.id.in_(bindparam("ids", expanding=True))
)
_RECORD_POLL = (
    update(_FEEDS)
    .where(_FEEDS.c.id == bindparam("_id"))
    .values({name: bindparam(name) for name in _POLL_COLUMNS})
)


def _apply_poll(row: dict[str, Any], update: FeedUpdate) -> None:
    """A feed's row (column name -> value) after one poll."""
    row["last_checked_at"] = update.checked_at
    row["next_check_at"] = update.next_check_at
    row["last_status"] = update.status
    if update.error is None:
        row["last_success_at"] = update.checked_at
        row["error_count"] = 0
        row["last_error"] = None
        if update.etag is not None:
            row["etag"] = update.etag
        if update.last_modified is not None:
            row["last_modified"] = update.last_modified
    else:
        row["error_count"] += 1
        row["last_error"] = update.error
    if update.new_url is not None:
        row["url"] = update.new_url
    if update.disable is not None:
        row["disabled_reason"] = update.disable
    elif update.error is None:
        row["disabled_reason"] = None
    if update.body_hash is not None:
        row["body_hash"] = update.body_hash
    if update.min_interval is not None:
        row["min_interval_seconds"] = update.min_interval.total_seconds()
    if update.new_entries > 0:
        row["recent_new_at"] = _recent(row["recent_new_at"] or [], update.checked_at)
    row["lease_owner"] = row["lease_until"] = None


def _recent(stored: list[str], checked_at: datetime) -> list[str]:
    """The stored timestamps plus checked_at, oldest first, the latest RECENT_NEW_LIMIT."""
    instants = sorted([*map(_parse_instant, stored), _utc(checked_at)])
    return [instant.isoformat() for instant in instants[-RECENT_NEW_LIMIT:]]


def _parse_instant(value: str) -> datetime:
    return _utc(datetime.fromisoformat(value))


def _utc(value: datetime) -> datetime:
    utc = as_utc(value)
    assert utc is not None
    return utc


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
        "next_attempt_at": alert.not_before or alert.created_at,
        "batched": alert.batched,
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
        disabled_reason=row.disabled_reason,
        body_hash=row.body_hash,
        min_interval=(
            None
            if row.min_interval_seconds is None
            else timedelta(seconds=row.min_interval_seconds)
        ),
        recent_new_at=tuple(_parse_instant(value) for value in row.recent_new_at),
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
        batched=row.batched,
    )
