"""`watcher rules test` and `watcher rules backfill`."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from watcher.cli_common import ConfigOption, config_path, user_errors
from watcher.models import Entry, FetchSettings
from watcher.units import parse_duration

if TYPE_CHECKING:  # the commands import these when they run (see watcher.cli)
    from watcher.config import Config, RuleBook
    from watcher.rules.matcher import RuleSet
    from watcher.rules_tester import Hit, Source

rules_app = typer.Typer(
    help="Try rules out and apply them to stored entries.", no_args_is_help=True
)

ConfiguredFeed = tuple[str, tuple[str, ...], FetchSettings]
SinceOption = Annotated[
    str, typer.Option("--since", help="How far back in stored entries: 90m, 7d, 2w …")
]


def _since(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from None


@rules_app.command("test")
def rules_test(
    sources: Annotated[
        list[str] | None,
        typer.Argument(metavar="[SOURCE]...", help="Feed files or URLs to test the rules on."),
    ] = None,
    *,
    config: ConfigOption = None,
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="A rules file or folder (works without a config)."),
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per match, for scripts.")
    ] = False,
    stored: Annotated[
        bool, typer.Option("--stored", help="Test on entries already in the store.")
    ] = False,
    since: SinceOption = "7d",
) -> None:
    """Print every (rule, entry) match the rules find, without alerting anyone."""
    from watcher.fetch import Fetcher
    from watcher.rules.matcher import RuleSet
    from watcher.rules_tester import SourceError, read_source

    if not sources and not stored:
        raise typer.BadParameter("give feed files or URLs, or --stored", param_hint="SOURCE")
    loaded = _config_for_test(config, rules, stored)
    rulebook = _rulebook_for_test(loaded, rules)
    for warning in rulebook.warnings:
        typer.echo(warning, err=True)
    compiled = user_errors(lambda: RuleSet.compile(rulebook.rules, rulebook.entities))
    printer = _HitPrinter(json_lines)
    failed = False
    if stored and loaded is not None:
        _test_stored(loaded, compiled, _since(since), printer)
    with Fetcher() as fetcher:
        for source in sources or []:
            try:
                read = read_source(source, fetcher, _configured_feed(loaded))
            except SourceError as exc:
                typer.echo(f"error: {exc}", err=True)
                failed = True
                continue
            _show_source(read, compiled, printer)
    if not json_lines:
        typer.echo(
            f"{printer.count} matches in {printer.entries} entries, {len(compiled.rules)} rules",
            err=True,
        )
    if failed:
        raise typer.Exit(1)


class _HitPrinter:
    def __init__(self, json_lines: bool) -> None:
        self.json_lines = json_lines
        self.count = 0
        self.entries = 0
        self.color = sys.stdout.isatty()

    def show(self, hit: Hit) -> None:
        from watcher.rules_tester import format_hit

        self.count += 1
        if self.json_lines:
            typer.echo(json.dumps(hit.as_json(), ensure_ascii=False))
        else:
            typer.echo(format_hit(hit, self._highlight))

    def _highlight(self, text: str) -> str:
        return typer.style(text, fg="yellow", bold=True) if self.color else f"*{text}*"


def _show_source(read: Source, compiled: RuleSet, printer: _HitPrinter) -> None:
    from watcher.rules_tester import hits

    printer.entries += len(read.entries)
    for hit in hits(compiled, read.entries, lambda _entry: read.tags, read.name):
        printer.show(hit)


def _config_for_test(config: Path | None, rules: Path | None, stored: bool) -> Config | None:
    if rules is not None and config is None and not stored:
        return None  # --rules alone needs no config
    from watcher.config import load_config

    return user_errors(lambda: load_config(config_path(config)))


def _rulebook_for_test(loaded: Config | None, rules: Path | None) -> RuleBook:
    from watcher.config import load_rules

    if rules is None:
        assert loaded is not None
        return loaded.rulebook
    if not rules.exists():
        typer.echo(f"error: rules path not found: {rules}", err=True)
        raise typer.Exit(1)
    feeds = loaded.feeds if loaded else None
    return user_errors(lambda: load_rules(rules.resolve(), feeds=feeds))


def _configured_feed(loaded: Config | None) -> Callable[[str], ConfiguredFeed | None]:
    def lookup(url: str) -> ConfiguredFeed | None:
        for feed in loaded.feeds if loaded else ():
            if feed.url == url:
                return feed.name, feed.tags, feed.fetch
        return None

    return lookup


def _test_stored(loaded: Config, compiled: RuleSet, since: timedelta, printer: _HitPrinter) -> None:
    from watcher.rules_tester import hits
    from watcher.service import utc_now
    from watcher.store import open_store

    with user_errors(lambda: open_store(loaded.store_url)) as store:
        entries = store.entries_since(utc_now() - since)
    printer.entries += len(entries)

    def tags(entry: Entry) -> tuple[str, ...]:
        return loaded.feed_tags(entry.feed)

    for hit in hits(compiled, entries, tags, "store"):
        printer.show(hit)


@rules_app.command("backfill")
def rules_backfill(
    rule: Annotated[str, typer.Argument(metavar="RULE", help="The rule's name.")],
    config: ConfigOption = None,
    since: SinceOption = "7d",
) -> None:
    """Alert on entries already stored that RULE matches (new rules otherwise only see new
    entries). Entries already alerted for this rule and target are never alerted again."""
    from watcher.config import load_config
    from watcher.pipeline import alerts_for
    from watcher.rules.matcher import RuleSet
    from watcher.service import utc_now
    from watcher.store import open_store

    loaded = user_errors(lambda: load_config(config_path(config)))
    chosen = [candidate for candidate in loaded.rules if candidate.name == rule]
    if not chosen:
        known = ", ".join(candidate.name for candidate in loaded.rules) or "none"
        typer.echo(f"error: no rule named {rule!r} (rules: {known})", err=True)
        raise typer.Exit(1)
    compiled = user_errors(lambda: RuleSet.compile(chosen, loaded.rulebook.entities))
    now = utc_now()
    with user_errors(lambda: open_store(loaded.store_url)) as store:
        entries = store.entries_since(now - _since(since))
        matches = [
            match
            for entry in entries
            for match in compiled.match(entry, loaded.feed_tags(entry.feed))
        ]
        alerts = alerts_for(matches, compiled.rules, now)
        with store.transaction() as tx:
            queued = tx.enqueue_alerts(alerts)
    typer.echo(
        f"rule {rule!r} matches {len(matches)} of {len(entries)} entries stored in the last "
        f"{since}; queued {queued} alerts ({len(alerts) - queued} were already queued or sent)."
    )
    if queued:
        typer.echo("The daemon sends them at its next tick (or run: watcher run --once).")
