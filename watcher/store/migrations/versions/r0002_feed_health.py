"""Feed health (disabled feeds, body hash, server's minimum interval, recent new entries)
and leases, so that several instances can share one database.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_FEED_COLUMNS = (
    "disabled_reason",
    "body_hash",
    "min_interval_seconds",
    "recent_new_at",
    "lease_owner",
    "lease_until",
)


def _lease_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("lease_owner", sa.Text()),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
    ]


def _schema_version(value: str) -> None:
    meta = sa.table("meta", sa.column("key", sa.String()), sa.column("value", sa.String()))
    op.execute(meta.update().where(meta.c.key == "schema_version").values(value=value))


def upgrade() -> None:
    # Batch mode: SQLite's ALTER TABLE is limited. These are plain ADD COLUMNs (a constant
    # server default keeps it so), which batch mode runs without rebuilding the table.
    with op.batch_alter_table("feeds") as feeds:
        feeds.add_column(sa.Column("disabled_reason", sa.Text()))
        feeds.add_column(sa.Column("body_hash", sa.Text()))
        feeds.add_column(sa.Column("min_interval_seconds", sa.Float()))
        feeds.add_column(sa.Column("recent_new_at", sa.JSON(), nullable=False, server_default="[]"))
        for column in _lease_columns():
            feeds.add_column(column)
    with op.batch_alter_table("alerts") as alerts:
        for column in _lease_columns():
            alerts.add_column(column)
    _schema_version("2")


def downgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_column("lease_until")
        alerts.drop_column("lease_owner")
    with op.batch_alter_table("feeds") as feeds:
        for name in reversed(_FEED_COLUMNS):
            feeds.drop_column(name)
    _schema_version("1")
