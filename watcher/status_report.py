"""`watcher status`: one picture of a running watcher, for people (a table) and scripts (JSON)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from watcher.models import AlertState, FeedState
from watcher.store import SchemaStatus, Store


def gather(store: Store, schema: SchemaStatus | None = None) -> dict[str, Any]:
    """Everything status shows, as JSON-ready values. Feeds in trouble come first."""
    feeds = sorted(store.feeds(), key=trouble_first)
    counts = store.alert_counts()
    return {
        "feeds": {
            "total": len(feeds),
            "ok": sum(1 for feed in feeds if _health(feed) == "ok"),
            "failing": sum(1 for feed in feeds if _health(feed) == "failing"),
            "disabled": sum(1 for feed in feeds if _health(feed) == "disabled"),
            "items": [_feed(feed) for feed in feeds],
        },
        "entries": store.entry_count(),
        "alerts": {state.value: counts.get(state, 0) for state in AlertState},
        "rules": _note(store, "rules"),
        "last_tick": _note(store, "last_tick"),
        "schema": {"revision": schema.current, "needed": schema.head} if schema else None,
    }


def trouble_first(feed: FeedState) -> tuple[int, str]:
    """Disabled (gone) feeds first, then failing ones, then the healthy, each by name."""
    return (("disabled", "failing", "ok").index(_health(feed)), feed.name)


def _health(feed: FeedState) -> str:
    if feed.disabled_reason:
        return "disabled"
    return "failing" if feed.error_count else "ok"


def _feed(feed: FeedState) -> dict[str, Any]:
    return {
        "name": feed.name,
        "url": feed.url,
        "health": _health(feed),
        "last_status": feed.last_status,
        "last_checked_at": _iso(feed.last_checked_at),
        "last_success_at": _iso(feed.last_success_at),
        "error_count": feed.error_count,
        "last_error": feed.last_error,
        "next_check_at": _iso(feed.next_check_at),
        "disabled_reason": feed.disabled_reason,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _note(store: Store, key: str) -> dict[str, Any] | None:
    text = store.note(key)
    return json.loads(text) if text else None


def print_report(report: dict[str, Any], console: Console) -> None:
    feeds = report["feeds"]
    disabled = f", {feeds['disabled']} disabled" if feeds["disabled"] else ""
    console.print(
        f"[bold]Feeds[/]    {feeds['total']} ({feeds['ok']} ok, {feeds['failing']} failing"
        f"{disabled})"
    )
    troubled = [item for item in feeds["items"] if item["health"] != "ok"]
    if troubled:
        table = Table("feed", "status", "errors", "last error", "next check", box=None)
        for item in troubled:
            table.add_row(
                item["name"],
                str(item["last_status"] or "-"),
                str(item["error_count"]),
                item["last_error"] or "",
                "disabled" if item["disabled_reason"] else _short(item["next_check_at"]),
            )
        console.print(table)
    console.print(f"[bold]Entries[/]  {report['entries']}")
    alerts = report["alerts"]
    console.print(
        "[bold]Alerts[/]   " + ", ".join(f"{count} {state}" for state, count in alerts.items())
    )
    console.print("[bold]Rules[/]    " + _rules_line(report["rules"]), highlight=False)
    console.print("[bold]Last tick[/] " + _tick_line(report["last_tick"]), highlight=False)
    schema = report["schema"]
    if schema is not None:
        state = "up to date" if schema["revision"] == schema["needed"] else "run watcher db upgrade"
        console.print(f"[bold]Schema[/]   revision {schema['revision']} ({state})", highlight=False)


def _short(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


def _rules_line(rules: dict[str, Any] | None) -> str:
    if rules is None:
        return "not loaded by the daemon yet"
    loaded = f"{rules['rules']} rules in use since {_short(rules['loaded_at'])}"
    if rules.get("error"):
        first_line = str(rules["error"]).splitlines()[0]
        return f"RELOAD FAILED at {_short(rules['error_at'])}: {first_line}\n         ({loaded})"
    return loaded


def _tick_line(tick: dict[str, Any] | None) -> str:
    if tick is None:
        return "never (the daemon has not run yet)"
    return (
        f"{_short(tick['finished_at'])}: {tick['polled']} feeds polled ({tick['failed']} failed), "
        f"{tick['new_entries']} new entries, {tick['sent']} alerts sent"
    )
