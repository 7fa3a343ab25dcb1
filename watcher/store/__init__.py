"""Persistence: feeds, entries and the alert outbox. Only models.py values cross this line."""

from __future__ import annotations

from watcher.store.repository import Store, Transaction, open_store

__all__ = ["Store", "Transaction", "open_store"]
