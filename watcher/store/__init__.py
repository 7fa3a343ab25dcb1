"""Persistence: feeds, entries and the alert outbox. Only models.py values cross this line."""

from __future__ import annotations

from watcher.store.migrate import SchemaStatus, UpgradeReport, schema_status, upgrade_store
from watcher.store.repository import Store, Transaction, open_store

__all__ = [
    "SchemaStatus",
    "Store",
    "Transaction",
    "UpgradeReport",
    "open_store",
    "schema_status",
    "upgrade_store",
]
