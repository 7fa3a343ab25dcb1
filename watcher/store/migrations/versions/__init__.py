"""One module per revision; alembic finds them by file, not by import."""
