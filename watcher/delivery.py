"""The outbox worker: send due alerts, one target at a time, and record each outcome.

Sending is at-least-once: an alert is marked sent only after its target accepted it, so
a crash between the two re-sends that one alert on restart, and never anything else.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from watcher import notify, timing
from watcher.config import DeliverySettings
from watcher.metrics import Metrics
from watcher.models import Alert
from watcher.notify import Message, SendOutcome
from watcher.render import render_alert
from watcher.store import Store

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    dead: int = 0

    def __iadd__(self, other: DeliveryReport) -> DeliveryReport:
        self.sent += other.sent
        self.retrying += other.retrying
        self.dead += other.dead
        return self


@dataclass(frozen=True, slots=True)
class DeliveryDeps:
    store: Store
    targets: Mapping[str, str]  # target name -> Apprise URL
    settings: DeliverySettings
    send: Callable[[str, Message], SendOutcome] = notify.send
    jitter: Callable[[], float] = field(default=random.random)
    metrics: Metrics | None = None


def deliver_due(
    deps: DeliveryDeps,
    now: datetime,
    *,
    batch: int = 100,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send every alert due at `now`, oldest first, until none is left or `stop` is set."""
    report = DeliveryReport()
    while stop is None or not stop.is_set():
        due = deps.store.due_alerts(now, limit=batch)
        for alert in due:
            if stop is not None and stop.is_set():
                break
            report += _deliver_one(deps, alert, now)
        if len(due) < batch:
            break
    return report


def _deliver_one(deps: DeliveryDeps, alert: Alert, now: datetime) -> DeliveryReport:
    url = deps.targets.get(alert.target)
    if url is None:
        outcome = SendOutcome(False, f"target {alert.target!r} is not in the config's notify:")
    else:
        outcome = deps.send(url, render_alert(alert))
    if deps.metrics is not None:
        if outcome.ok:
            deps.metrics.delivered(alert.target, (now - alert.created_at).total_seconds())
        else:
            deps.metrics.delivery_failed(alert.target)
    if outcome.ok:
        deps.store.mark_sent(alert.id, now)
        log.info("alert %d sent: rule %s to %s", alert.id, alert.rule, alert.target)
        return DeliveryReport(sent=1)
    attempts = alert.attempts + 1
    retry_at = timing.next_delivery_attempt(
        now=now,
        attempts=attempts,
        base=deps.settings.retry,
        cap=deps.settings.max_retry,
        max_attempts=deps.settings.max_attempts,
        jitter=deps.jitter(),
    )
    error = outcome.error or "failed"
    deps.store.mark_failed(alert.id, error, now, retry_at)
    if retry_at is None:
        log.error(
            "alert %d to %s is dead after %d attempts: %s (watcher alerts retry %d)",
            alert.id,
            alert.target,
            attempts,
            error,
            alert.id,
        )
        return DeliveryReport(dead=1)
    log.warning(
        "alert %d to %s failed (attempt %d): %s; retrying at %s",
        alert.id,
        alert.target,
        attempts,
        error,
        f"{retry_at:%Y-%m-%d %H:%M:%S}",
    )
    return DeliveryReport(retrying=1)
