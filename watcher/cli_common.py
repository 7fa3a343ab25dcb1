"""What every `watcher` subcommand shares: the --config option, error handling, logging."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from watcher.errors import WatcherError

if TYPE_CHECKING:
    from watcher.store import Store

DEFAULT_CONFIG = Path("config/watcher.yaml")
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default: $WATCHER_CONFIG, else config/watcher.yaml).",
        dir_okay=False,
    ),
]


def config_path(option: Path | None) -> Path:
    if option is not None:
        return option
    return Path(os.environ.get("WATCHER_CONFIG") or DEFAULT_CONFIG)


def user_errors(action: Callable[[], T]) -> T:
    """Run `action`; a WatcherError is printed for the user and exits 1."""
    try:
        return action()
    except WatcherError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def open_store_of(config: Path | None) -> Store:
    from watcher.config import load_config
    from watcher.store import open_store

    loaded = user_errors(lambda: load_config(config_path(config), with_rules=False))
    return user_errors(lambda: open_store(loaded.store_url))


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"
