"""Alerts that wait for a digest (a rule's digest window, quiet hours, a rate limit) are
marked `batched`, so they go out together as one message; `message_key` names the message
an alert went out in (rate limits count messages, not alerts).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def _schema_version(value: str) -> None:
    meta = sa.table("meta", sa.column("key", sa.String()), sa.column("value", sa.String()))
    op.execute(meta.update().where(meta.c.key == "schema_version").values(value=value))


def upgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(
            sa.Column("batched", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        alerts.add_column(sa.Column("message_key", sa.Text()))
    _schema_version("3")


def downgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_column("message_key")
        alerts.drop_column("batched")
    _schema_version("2")
