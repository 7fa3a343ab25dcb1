"""Alembic migrations of the store's schema, run by watcher.store.migrate (no alembic.ini).

To add a revision, copy the latest file in versions/, bump `revision`/`down_revision`,
change tables.py to match, and keep meta.schema_version in step (see MetaRow).
"""
