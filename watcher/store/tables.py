"""The database tables. Private to watcher.store: the rest of watcher sees models.py values.

These classes describe the schema at the head revision; the migrations in
watcher/store/migrations create and change it (a test checks that the two agree).
Constraint and index names are explicit so that migrations can refer to them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime, Dialect, Index, MetaData, Text, UniqueConstraint
from sqlalchemy import false as sa_false
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def as_utc(value: datetime | None) -> datetime | None:
    """The same instant, timezone-aware in UTC; a naive datetime is taken to be UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware.

    PostgreSQL keeps it as timestamptz; SQLite has no time zones, so the UTC wall time is
    stored (ISO strings, which compare correctly because they are all UTC).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        utc = as_utc(value)
        return utc.replace(tzinfo=None) if utc is not None and dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value)


class FeedRow(SQLModel, table=True):
    __tablename__ = "feeds"
    __table_args__ = (UniqueConstraint("name", name="uq_feeds_name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str
    # config_url is what the config says; url is where the feed lives now (after a
    # permanent redirect). Only a change of config_url resets the feed.
    config_url: str = Field(sa_type=Text)
    url: str = Field(sa_type=Text)
    interval_seconds: float
    tags: list[str] = Field(default_factory=list, sa_type=JSON)
    active: bool = True
    etag: str | None = Field(default=None, sa_type=Text)
    last_modified: str | None = Field(default=None, sa_type=Text)
    next_check_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_type=Text)
    error_count: int = 0
    # feed health (revision 0002)
    disabled_reason: str | None = Field(default=None, sa_type=Text)  # set: never polled again
    body_hash: str | None = Field(default=None, sa_type=Text)
    min_interval_seconds: float | None = None
    # ISO timestamps of the latest polls that stored new entries, oldest first
    recent_new_at: list[str] = Field(
        default_factory=list, sa_type=JSON, sa_column_kwargs={"server_default": "[]"}
    )
    # the instance polling the feed now, and until when it may (revision 0002)
    lease_owner: str | None = Field(default=None, sa_type=Text)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EntryRow(SQLModel, table=True):
    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("key", name="uq_entries_key"),
        Index("ix_entries_link_key", "link_key"),
        Index("ix_entries_feed_id", "feed_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(sa_type=Text)
    link_key: str | None = Field(default=None, sa_type=Text)
    feed_id: int = Field(foreign_key="feeds.id")
    feed: str  # the feed's name as the entry carried it
    content_hash: str
    title: str = Field(sa_type=Text)
    link: str | None = Field(default=None, sa_type=Text)
    summary: str = Field(default="", sa_type=Text)
    content: str = Field(default="", sa_type=Text)
    author: str = Field(default="", sa_type=Text)
    categories: list[str] = Field(default_factory=list, sa_type=JSON)
    published: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_seen_at: datetime = Field(sa_type=UTCDateTime)


class AlertRow(SQLModel, table=True):
    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_alerts_idempotency_key"),
        Index("ix_alerts_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str
    rule: str
    target: str
    entry_key: str = Field(sa_type=Text, foreign_key="entries.key")
    terms: list[str] = Field(default_factory=list, sa_type=JSON)
    state: str  # an AlertState value
    attempts: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime)
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_type=Text)
    lease_owner: str | None = Field(default=None, sa_type=Text)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Waits for a digest (rule digest, quiet hours, rate limit): goes out grouped.
    batched: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()})
    message_key: str | None = Field(default=None, sa_type=Text)  # the message it went out in


class MetaRow(SQLModel, table=True):
    """Key/value facts about the database: daemon notes, and schema_version.

    schema_version follows the alembic revision (0002 -> "2") only so that a watcher from
    before the migrations, which reads nothing else, refuses an upgraded database.
    """

    __tablename__ = "meta"

    key: str = Field(primary_key=True)
    value: str


def store_metadata() -> MetaData:
    """The metadata holding these tables (what migrations are compared against)."""
    return SQLModel.metadata
