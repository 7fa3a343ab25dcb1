"""The `watcher` command's subcommands (typer); watcher.cli runs them.

The commands import what they use inside their bodies, so that `watcher --help` or
`watcher check` does not pay for the daemon's libraries (SQLAlchemy, alembic, Apprise,
Jinja2, prometheus_client, httpx).
"""

from __future__ import annotations

import enum
import json
from typing import TYPE_CHECKING, Annotated

import typer

from watcher.cli_common import (
    ConfigOption,
    config_path,
    open_store_of,
    user_errors,
    when,
)
from watcher.cli_db import db_app
from watcher.cli_rules import rules_app
from watcher.models import Alert, AlertState

if TYPE_CHECKING:
    from watcher.config import Config


class LogFormatChoice(enum.StrEnum):
    AUTO = "auto"
    TEXT = "text"
    JSON = "json"


app = typer.Typer(
    help="Watch news feeds and alert people when a story matches their rules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
feeds_app = typer.Typer(help="The configured feeds and their health.", no_args_is_help=True)
alerts_app = typer.Typer(help="The alert outbox: what was sent, what waits.", no_args_is_help=True)
app.add_typer(feeds_app, name="feeds")
app.add_typer(alerts_app, name="alerts")
app.add_typer(rules_app, name="rules")
app.add_typer(db_app, name="db")


def _print_warnings(config: Config) -> None:
    for warning in config.warnings:
        typer.echo(warning, err=True)


@app.command()
def run(
    config: ConfigOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="Poll every feed once, deliver, and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    log_format: Annotated[
        LogFormatChoice,
        typer.Option(
            "--log-format", help="auto: JSON under systemd (journald), text on a terminal."
        ),
    ] = LogFormatChoice.AUTO,
) -> None:
    """Run the daemon: poll feeds on schedule, match rules, deliver alerts."""
    from watcher.config import load_config
    from watcher.logs import set_secrets, setup_logging
    from watcher.service import Watcher, run_daemon

    setup_logging(fmt=log_format.value, verbose=verbose)
    loaded = user_errors(lambda: load_config(config_path(config)))
    set_secrets(loaded.secrets)
    _print_warnings(loaded)
    with user_errors(lambda: Watcher(loaded)) as watcher:
        if once:
            report = watcher.tick(every_feed=True)
            if report.error is not None:
                typer.echo(f"the poll stopped: {report.error}", err=True)
                raise typer.Exit(1)
            typer.echo(
                f"polled {len(report.polled)} feeds ({report.failed_feeds} failed), "
                f"{report.new_entries} new entries, {report.delivery.sent} alerts sent, "
                f"{report.delivery.retrying} waiting to retry",
                err=True,
            )
        else:
            run_daemon(watcher)


@app.command()
def check(config: ConfigOption = None) -> None:
    """Validate the config and its rules; print file:line:col for each problem."""
    from watcher.config import load_config

    path = config_path(config)
    loaded = user_errors(lambda: load_config(path))
    _print_warnings(loaded)
    typer.echo(
        f"{path}: ok — {len(loaded.feeds)} feeds, {len(loaded.rules)} rules, "
        f"{len(loaded.rulebook.entities)} entities, {len(loaded.targets)} notify targets"
    )


@feeds_app.command("list")
def feeds_list(config: ConfigOption = None) -> None:
    """Each feed with its last status, last success, errors and next check."""
    from watcher.status_report import trouble_first

    with open_store_of(config) as store:
        feeds = sorted(store.feeds(), key=trouble_first)
        typer.echo(f"{'FEED':30} {'STATUS':7} {'LAST OK':19} {'ERRORS':6} {'NEXT CHECK':19} ERROR")
        for feed in feeds:
            status = str(feed.last_status) if feed.last_status is not None else "-"
            next_check = "disabled" if feed.disabled_reason else when(feed.next_check_at)
            typer.echo(
                f"{feed.name[:30]:30} {status:7} {when(feed.last_success_at):19} "
                f"{feed.error_count:<6} {next_check:19} {feed.last_error or ''}"
            )


class ListedState(enum.StrEnum):
    PENDING = "pending"  # waiting for its first try, a digest, quiet hours or a rate limit
    RETRYING = "retrying"  # pending after a failed try
    SENT = "sent"
    DEAD = "dead"


def _listed_state(alert: Alert) -> ListedState:
    if alert.state is AlertState.PENDING and alert.attempts:
        return ListedState.RETRYING
    return ListedState(alert.state.value)


@alerts_app.command("list")
def alerts_list(
    config: ConfigOption = None,
    state: Annotated[
        ListedState | None, typer.Option("--state", help="Only alerts in this state.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
) -> None:
    """The newest alerts with their state, attempts, next try and last error."""
    stored = {ListedState.RETRYING: AlertState.PENDING}.get(state) if state else None
    stored = stored or (AlertState(state.value) if state else None)
    with open_store_of(config) as store:
        alerts = [
            alert
            for alert in store.alerts(stored, limit=limit if state is None else 100_000)
            if state is None or _listed_state(alert) is state
        ][:limit]
    typer.echo(
        f"{'ID':>6} {'STATE':8} {'TRIES':5} {'CREATED':19} {'NEXT TRY':19} {'RULE':16} "
        f"{'TARGET':10} TITLE"
    )
    for alert in alerts:
        next_try = when(alert.next_attempt_at) if alert.state is AlertState.PENDING else "-"
        typer.echo(
            f"{alert.id:>6} {_listed_state(alert).value:8} {alert.attempts:<5} "
            f"{when(alert.created_at):19} {next_try:19} {alert.rule[:16]:16} "
            f"{alert.target[:10]:10} {alert.entry.title[:60]}"
        )
        if alert.last_error and alert.state is not AlertState.SENT:
            typer.echo(f"{'':>6} last error: {alert.last_error}")


@alerts_app.command("retry")
def alerts_retry(
    alert_id: Annotated[
        int | None, typer.Argument(metavar="[ID]", help="The alert's ID (alerts list).")
    ] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Retry every dead alert.")] = False,
    config: ConfigOption = None,
) -> None:
    """Send a dead or waiting alert (or, with --dead, every dead alert) at the next delivery."""
    from watcher.service import utc_now

    if (alert_id is None) == (not dead):
        raise typer.BadParameter("give an alert ID or --dead, not both", param_hint="ID")
    now = utc_now()
    with open_store_of(config) as store:
        if dead:
            ids = [alert.id for alert in store.alerts(AlertState.DEAD, limit=100_000)]
            retried = sum(store.retry_alert(each, now) for each in ids)
            typer.echo(f"{retried} dead alerts will be sent at the next delivery")
            return
        assert alert_id is not None
        if not store.retry_alert(alert_id, now):
            typer.echo(f"no alert {alert_id} waiting or dead (see watcher alerts list)", err=True)
            raise typer.Exit(1)
        typer.echo(f"alert {alert_id} will be sent at the next delivery")


@app.command()
def status(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts.")] = False,
) -> None:
    """Feeds by health, entries, alerts by state, rules, last tick."""
    from rich.console import Console

    from watcher.config import load_config
    from watcher.status_report import gather, print_report
    from watcher.store import open_store, schema_status

    loaded = user_errors(lambda: load_config(config_path(config), with_rules=False))
    with user_errors(lambda: open_store(loaded.store_url)) as store:
        report = gather(store, user_errors(lambda: schema_status(loaded.store_url)))
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print_report(report, Console(soft_wrap=True))
