"""`watcher db upgrade` and `watcher db status`: the store's schema revision."""

from __future__ import annotations

import typer

from watcher.cli_common import ConfigOption, config_path, user_errors

db_app = typer.Typer(help="The database schema: status and upgrades.", no_args_is_help=True)


def _store_url(config: ConfigOption) -> str:
    from watcher.config import load_config

    return user_errors(lambda: load_config(config_path(config), with_rules=False)).store_url


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Create the database, or bring its schema up to this watcher's version (back up first)."""
    from watcher.store import upgrade_store

    report = user_errors(lambda: upgrade_store(_store_url(config)))
    if report.from_revision is None:
        typer.echo(f"database created at schema revision {report.to_revision}")
    elif report.changed:
        typer.echo(
            f"database upgraded from revision {report.from_revision} to {report.to_revision}"
        )
    else:
        typer.echo(f"database already at revision {report.to_revision}; nothing to do")


@db_app.command("status")
def db_status(config: ConfigOption = None) -> None:
    """The schema revision of the database and the one this watcher needs."""
    from watcher.store import schema_status

    status = user_errors(lambda: schema_status(_store_url(config)))
    current = status.current or "none (no database yet)"
    verdict = "up to date" if status.current == status.head else "run: watcher db upgrade"
    typer.echo(f"schema revision {current}; this watcher needs {status.head} ({verdict})")
