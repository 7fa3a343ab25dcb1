"""SQLAlchemy engines for the store's URLs: SQLite files (or :memory:) and PostgreSQL (psycopg)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from watcher.errors import StoreError

URL_HINT = "expected sqlite:///path/to/watcher.db or postgresql+psycopg://user@host/dbname"
SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 10


def parse_url(url: str) -> URL:
    """The URL of a supported backend; StoreError (without the password) otherwise."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:  # not echoed: it may hold a password
        raise StoreError(f"the store URL cannot be parsed: {URL_HINT}") from exc
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported store URL {shown(parsed)}: {URL_HINT}")
    if parsed.drivername == "postgresql":  # plain postgresql:// would mean psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def shown(url: URL) -> str:
    """The URL as it may appear in messages and logs."""
    return url.render_as_string(hide_password=True)


def is_sqlite_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and (url.database or ":memory:") == ":memory:"


def sqlite_file_missing(url: URL) -> bool:
    """A SQLite file URL whose file does not exist yet (connecting would create it)."""
    if url.get_backend_name() != "sqlite" or is_sqlite_memory(url):
        return False
    return not Path(url.database or "").exists()


def store_engine(url: URL) -> Engine:
    """The engine a Store works through: foreign keys enforced on SQLite."""
    return _engine(url, migrating=False)


def migration_engine(url: URL) -> Engine:
    """The engine migrations run through: on SQLite every transaction is BEGIN IMMEDIATE.

    pysqlite neither begins a transaction before DDL nor takes the write lock up front, so
    by default a migration would be neither atomic nor serialised against a second process
    doing the same. Foreign keys stay off so that batch mode may rebuild a referenced table
    (SQLite ignores that pragma inside a transaction, so it cannot be switched per migration).
    """
    return _engine(url, migrating=True)


def reason(exc: SQLAlchemyError) -> str:
    """The driver's message without SQLAlchemy's SQL echo and links, on one line."""
    detail = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return " ".join(str(detail).split())


def _engine(url: URL, *, migrating: bool) -> Engine:
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url, migrating=migrating)
        return _postgres_engine(url)
    except ArgumentError as exc:  # NoSuchModuleError: an unknown driver, e.g. sqlite+foo
        raise StoreError(f"unsupported store URL {shown(url)}: {URL_HINT}") from exc


def _sqlite_engine(url: URL, *, migrating: bool) -> Engine:
    if is_sqlite_memory(url):
        engine = create_engine(url, poolclass=StaticPool)
    else:
        try:
            Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder for the store {shown(url)}: {exc}") from exc
        engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if not migrating:
            cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.close()
        if migrating:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN, see below

    if migrating:

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL (a persistent setting), retrying while another connection holds it.

    SQLite answers "database is locked" at once, without its busy handler, when two connections
    race to switch a new file's journal mode, so the busy timeout is applied here by hand.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def _postgres_engine(url: URL) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)
