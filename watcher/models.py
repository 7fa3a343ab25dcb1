"""The vocabulary of watcher: frozen values passed between the modules. No I/O here."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.errors import Location
from watcher.pacing import Digest, QuietHours, RateLimit

USER_AGENT = "watcher/0.1 (+https://github.com/watcher-news/watcher; feed alert daemon)"


@dataclass(frozen=True, slots=True)
class FetchSettings:
    timeout: float = 30.0  # seconds for the whole fetch
    max_bytes: int = 10 * 1024 * 1024
    allow_private_networks: bool = False
    max_redirects: int = 5
    # An http(s) proxy URL for this feed, or "env" for HTTP(S)_PROXY/NO_PROXY; None: direct.
    # Not in repr: these three may carry credentials.
    proxy: str | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # sent with each request
    auth: tuple[str, str] | None = field(default=None, repr=False)  # basic auth: (user, password)


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """A feed as the user configured it."""

    name: str
    url: str  # http(s):// or an absolute file:// URL (relative paths resolved on load)
    interval: timedelta
    tags: tuple[str, ...] = ()
    fetch: FetchSettings = field(default_factory=FetchSettings)
    adaptive: bool = False  # poll more or less often with how often the feed publishes
    min_interval: timedelta = timedelta(minutes=5)  # bounds of the adaptive interval
    max_interval: timedelta = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class FeedState:
    """A feed as the store knows it: its config plus what polling learned."""

    id: int
    name: str
    url: str
    interval: timedelta
    etag: str | None = None
    last_modified: str | None = None
    next_check_at: datetime | None = None
    last_checked_at: datetime | None = None
    last_success_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    error_count: int = 0
    disabled_reason: str | None = None  # set: the feed is gone (HTTP 410), polling stopped
    body_hash: str | None = None  # sha256 of the last body parsed
    min_interval: timedelta | None = None  # the server's lower bound (ttl, Cache-Control...)
    recent_new_at: tuple[datetime, ...] = ()  # latest polls that stored new entries, oldest first


@dataclass(frozen=True, slots=True)
class FetchRequest:
    url: str
    settings: FetchSettings = field(default_factory=FetchSettings)
    etag: str | None = None
    last_modified: str | None = None
    user_agent: str = USER_AGENT


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch produced. Network and HTTP trouble is a value here, not an exception."""

    url: str  # the URL that was asked for
    final_url: str  # after redirects
    status: int | None  # None: no HTTP answer (DNS, connection, timeout, refused by policy)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    permanent_redirect: str | None = None  # where a 301/308 chain ended, to update the feed URL
    index: int | None = None  # Fetcher.fetch_many: the position of the request it answers

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    """One entry as the feed gave it, cleaned of feedparser's shapes."""

    guid: str | None
    title: str
    link: str | None
    summary: str = ""
    content: str = ""
    author: str = ""
    categories: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str
    link: str | None
    entries: tuple[ParsedEntry, ...]
    error: str | None = None  # feedparser's bozo message when the XML was not well formed
    ttl: timedelta | None = None  # how long the feed says it stays unchanged (<ttl>, sy:update*)

    @classmethod
    def failed(cls, error: str) -> ParsedFeed:
        """No feed at all: only why."""
        return cls(title="", link=None, entries=(), error=error)


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry with its identity: what the store keeps and the matcher reads."""

    feed: str  # the feed's configured name
    key: str  # dedup key: guid within the feed, else canonical link, else content hash
    link_key: str | None  # canonical link, shared across feeds
    content_hash: str
    title: str
    link: str | None
    summary: str = ""
    content: str = ""
    author: str = ""
    categories: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None


@dataclass(frozen=True, slots=True)
class TemplateSource:
    """Template source for an alert's title and/or body (Jinja2, rendered in a sandbox)."""

    title: str | None = None
    body: str | None = None


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """How a notify target wants its messages: limits, quiet hours, its own templates."""

    max: RateLimit | None = None
    quiet: QuietHours | None = None
    template: TemplateSource | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule as written in a rules file; the matcher compiles the queries."""

    name: str
    queries: tuple[str, ...]  # any of them matching makes the rule match
    notify: tuple[str, ...]  # target names from the config's notify: section
    feeds: tuple[str, ...] = ()  # feed names or "tag:x"; empty means every feed
    digest: Digest | None = None  # one message per window instead of one per match
    template: TemplateSource | None = None  # the operator's own title/body templates
    location: Location | None = None
    query_locations: tuple[Location | None, ...] = ()  # where each query string starts


@dataclass(frozen=True, slots=True)
class Match:
    rule: str
    entry_key: str
    terms: tuple[str, ...]  # what matched, for the alert and the rule tester


class AlertState(enum.StrEnum):
    PENDING = "pending"  # not sent yet, or failed and waiting for its next attempt
    SENT = "sent"
    DEAD = "dead"  # gave up; `watcher alerts retry` revives it


@dataclass(frozen=True, slots=True)
class NewAlert:
    idempotency_key: str
    rule: str
    target: str
    entry_key: str
    terms: tuple[str, ...]
    created_at: datetime
    not_before: datetime | None = None  # held back, e.g. until its digest window closes
    batched: bool = False  # goes out grouped with the other batched alerts of its target


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert from the outbox, with its entry, ready to render or list."""

    id: int
    idempotency_key: str
    rule: str
    target: str
    state: AlertState
    attempts: int
    entry: Entry
    terms: tuple[str, ...]
    created_at: datetime
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = None
    batched: bool = False


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """What one poll learned about a feed, written with its entries in one transaction."""

    checked_at: datetime
    next_check_at: datetime
    status: int | None
    error: str | None = None  # None: the poll succeeded (200 or 304)
    etag: str | None = None
    last_modified: str | None = None
    new_url: str | None = None  # a permanent redirect moved the feed
    disable: str | None = None  # why to stop polling the feed (it is gone: HTTP 410)
    body_hash: str | None = None  # None: keep the stored one
    min_interval: timedelta | None = None  # None: keep the stored one
    new_entries: int = 0  # stored by this poll; > 0 records checked_at in recent_new_at
