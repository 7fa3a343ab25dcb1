"""Alembic's environment: runs the revisions on the connection watcher.store.migrate hands in.

There is no alembic.ini and no offline (--sql) mode: the connection arrives in
config.attributes, already inside the transaction that makes the whole upgrade atomic.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from watcher.store.tables import store_metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise RuntimeError("watcher's migrations run through `watcher db upgrade`")
    context.configure(connection=connection, target_metadata=store_metadata())
    with context.begin_transaction():
        context.run_migrations()


run()
