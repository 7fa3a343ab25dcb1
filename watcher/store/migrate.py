"""Schema revisions: which one a database is at, and bringing it to the head revision.

The revisions are alembic scripts in watcher/store/migrations, run programmatically. The
alembic_version table says where a database is; a database created before migrations
existed (meta.schema_version = "1", no alembic_version) counts as the baseline, 0001.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from watcher.errors import StoreError
from watcher.store.engines import (
    migration_engine,
    parse_url,
    reason,
    shown,
    sqlite_file_missing,
    store_engine,
)

log = logging.getLogger(__name__)
_ASSIGNED = re.compile(r"""^revision(?:\s*:[^=]+)?\s*=\s*["'](\w+)["']""", re.MULTILINE)
_DOWN = re.compile(r"""^down_revision(?:\s*:[^=]+)?\s*=\s*(["'](\w+)["']|None)""", re.MULTILINE)

MIGRATIONS = Path(__file__).parent / "migrations"
BASELINE = "0001"
_STORE_TABLES = frozenset({"feeds", "entries", "alerts", "meta"})
# Any fixed number: serialises concurrent upgrades of one PostgreSQL database.
_POSTGRES_LOCK_KEY = 0x77617463686572


class SchemaStatus(NamedTuple):
    current: str | None  # None: an empty database
    head: str  # the revision this watcher needs


@dataclass(frozen=True, slots=True)
class UpgradeReport:
    from_revision: str | None  # None: the database was empty and was created at the head
    to_revision: str

    @property
    def changed(self) -> bool:
        return self.from_revision != self.to_revision


def head_revision() -> str:
    """The revision no other revision builds on (the package ships a single line of them)."""
    revisions = revisions_shipped()
    (head,) = set(revisions) - set(revisions.values())
    return head


def schema_status(url: str) -> SchemaStatus:
    """Where the database at `url` is and where it should be; changes nothing."""
    parsed = parse_url(url)
    if sqlite_file_missing(parsed):
        return SchemaStatus(None, head_revision())
    engine = store_engine(parsed)
    try:
        with engine.connect() as connection:
            return SchemaStatus(_current(connection).revision, head_revision())
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the store at {shown(parsed)}: {reason(exc)}") from exc
    finally:
        engine.dispose()


def upgrade_store(url: str) -> UpgradeReport:
    """Create the database at the head revision, or upgrade it there; a no-op when it is.

    The whole upgrade is one transaction, so a failure leaves the database as it was.
    """
    parsed = parse_url(url)
    engine = migration_engine(parsed)
    try:
        return upgrade_engine(engine)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot upgrade the store at {shown(parsed)}: {reason(exc)}") from exc
    finally:
        engine.dispose()


def upgrade_engine(engine: Engine) -> UpgradeReport:
    """upgrade_store on an engine (open_store's own, for an in-memory SQLite database)."""
    head = head_revision()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _POSTGRES_LOCK_KEY}
            )
        # Read under the lock: a concurrent upgrade may have finished meanwhile.
        found = _current(connection)
        refusal = _refusal(found.revision, head, upgrading=True)
        if refusal is not None:
            raise StoreError(refusal)
        if found.revision == head and found.stamped:
            return UpgradeReport(head, head)
        from alembic import command  # only here: a daemon whose store is current never needs it

        config = _config(connection)
        if found.revision is not None and not found.stamped:
            command.stamp(config, found.revision)
        command.upgrade(config, "head")
    if found.revision is None:
        log.info("store created at schema revision %s", head)
    else:
        log.info("store schema upgraded from revision %s to %s", found.revision, head)
    return UpgradeReport(found.revision, head)


def needs_creating(engine: Engine) -> bool:
    """For open_store: True when the database is empty, False when it is at the head.

    StoreError when it is at any other revision: upgrading is the user's call (a backup first).
    """
    head = head_revision()
    with engine.connect() as connection:
        found = _current(connection)
    refusal = _refusal(found.revision, head, upgrading=False)
    if refusal is not None:
        raise StoreError(refusal)
    return found.revision is None


def _refusal(current: str | None, head: str, *, upgrading: bool) -> str | None:
    if current is None or current == head:
        return None
    if current not in _known():
        return (
            f"the database schema is at revision {current}, which this watcher does not know"
            f" (it needs {head}): a newer watcher has upgraded it; run that version"
        )
    if upgrading:
        return None
    return (
        f"the database schema is at revision {current}, this watcher needs {head}:"
        " run `watcher db upgrade` (back up first)"
    )


class _Found(NamedTuple):
    revision: str | None
    stamped: bool  # False: no alembic_version yet (an empty or pre-migrations database)


def _current(connection: Connection) -> _Found:
    tables = set(inspect(connection).get_table_names())
    if "alembic_version" in tables:
        revisions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        if len(revisions) > 1:  # alembic's branches: this package never makes any
            raise StoreError(f"the database is at several schema revisions at once: {revisions}")
        if revisions:
            return _Found(str(revisions[0][0]), stamped=True)
    if not tables & _STORE_TABLES:
        return _Found(None, stamped=False)
    legacy = None
    if "meta" in tables:
        query = text("""SELECT value FROM meta WHERE "key" = 'schema_version'""")
        legacy = connection.execute(query).scalar_one_or_none()
    # Watchers before migrations wrote "1" when they created the tables.
    if "feeds" in tables and legacy in (None, "1"):
        return _Found(BASELINE, stamped=False)
    raise StoreError(
        f"the database has watcher tables but no schema revision (schema_version {legacy!r}):"
        " it was not made by watcher, or not completely; restore a backup"
    )


def _config(connection: Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


@cache
def revisions_shipped() -> dict[str, str | None]:
    """Each revision shipped, with the one it builds on, read from the revision files
    (``revision = "0002"``, ``down_revision: str | None = "0001"``) without importing
    alembic: checking a database at startup should not cost its memory. A test holds this
    to alembic's own reading."""
    found: dict[str, str | None] = {}
    for path in sorted((MIGRATIONS / "versions").glob("r*.py")):
        source = path.read_text(encoding="utf-8")
        revision = _ASSIGNED.search(source)
        down = _DOWN.search(source)
        if revision is None or down is None:
            raise RuntimeError(f"{path}: no revision or down_revision assignment")
        found[revision.group(1)] = down.group(2)
    return found


def _known() -> frozenset[str]:
    return frozenset(revisions_shipped())
