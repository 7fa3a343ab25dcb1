"""The `watcher` command. Exit codes: 0 ok, 1 user error, 2 usage error.

The `watcher` console script imports this module, and so does every parser process: it
imports the main module again (multiprocessing does, for forkserver and spawn). So this
module imports nothing at all; the commands (watcher.cli_app, typer) load when `main` runs.
tests/integration/test_parse_pool_imports.py checks what a worker imports.
"""

from __future__ import annotations


def main() -> None:
    from watcher.cli_app import app

    app()
