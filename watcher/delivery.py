"""The outbox worker: send due alerts, target by target, and record each outcome.

Per target, alerts go out in the order they were created:
- batched alerts (a rule's digest, quiet hours, a rate limit) become one digest message;
- the other alerts become one message per story, naming every rule that caught it;
- quiet hours and the rate limit hold messages back (as a digest), never drop them;
- when a send fails, the alert is retried with backoff and the target's later alerts wait
  with it, so a recovered target receives everything once and in order.

Sending is at-least-once: an alert is marked sent only after its target accepted it, so a
crash between the two re-sends that one message on restart, and never anything else.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher import notify, pacing, timing
from watcher.config import DeliverySettings
from watcher.metrics import Recorder
from watcher.models import Alert, TargetPolicy, TemplateSource
from watcher.notify import Message, SendOutcome
from watcher.render import TemplateOverride, group_by_entry, kind_for_url, render_group
from watcher.store import Store

log = logging.getLogger(__name__)
NO_POLICY = TargetPolicy()


@dataclass(slots=True)
class DeliveryReport:
    sent: int = 0  # alerts (a digest counts each alert it carries)
    messages: int = 0
    retrying: int = 0
    dead: int = 0
    held: int = 0  # waiting for quiet hours or the rate limit to end

    def __iadd__(self, other: DeliveryReport) -> DeliveryReport:
        self.sent += other.sent
        self.messages += other.messages
        self.retrying += other.retrying
        self.dead += other.dead
        self.held += other.held
        return self


@dataclass(frozen=True, slots=True)
class DeliveryDeps:
    store: Store
    targets: Mapping[str, str]  # target name -> Apprise URL
    settings: DeliverySettings
    send: Callable[[str, Message], SendOutcome] = notify.send
    jitter: Callable[[], float] = field(default=random.random)
    metrics: Recorder | None = None
    policies: Mapping[str, TargetPolicy] = field(default_factory=dict)
    rule_templates: Mapping[str, TemplateSource] = field(default_factory=dict)
    # Several instances on one database: alerts are leased to `owner` while being sent.
    owner: str | None = None
    lease: timedelta = timedelta(minutes=5)

    def due(self, now: datetime, limit: int) -> list[Alert]:
        if self.owner is None:
            return self.store.due_alerts(now, limit=limit)
        return self.store.claim_due_alerts(now, self.lease, self.owner, limit=limit)


def deliver_due(
    deps: DeliveryDeps,
    now: datetime,
    *,
    batch: int = 500,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send what is due at `now`, target by target, until nothing due is left or `stop`."""
    report = DeliveryReport()
    while stop is None or not stop.is_set():
        due = deps.due(now, batch)
        by_target: dict[str, list[Alert]] = {}
        for alert in due:
            by_target.setdefault(alert.target, []).append(alert)
        for target, alerts in by_target.items():
            if stop is not None and stop.is_set():
                break
            report += _deliver_target(deps, target, alerts, now)
        if len(due) < batch:
            break
    return report


def plan_messages(alerts: Sequence[Alert]) -> list[list[Alert]]:
    """Group a target's due alerts (oldest first) into messages, in sending order: all
    batched alerts in one digest, the others one message per story."""
    groups: dict[str, list[Alert]] = {}
    for alert in alerts:
        key = "\0digest" if alert.batched else alert.entry.key
        groups.setdefault(key, []).append(alert)
    return list(groups.values())


def _deliver_target(
    deps: DeliveryDeps, target: str, alerts: Sequence[Alert], now: datetime
) -> DeliveryReport:
    report = DeliveryReport()
    url = deps.targets.get(target)
    policy = deps.policies.get(target, NO_POLICY)
    quiet_end = pacing.quiet_until(policy.quiet, now) if policy.quiet and url else None
    if quiet_end is not None:
        deps.store.defer_alerts([alert.id for alert in alerts], quiet_end, batched=True)
        log.info("%d alerts to %s held for quiet hours until %s", len(alerts), target, quiet_end)
        return DeliveryReport(held=len(alerts))
    messages = plan_messages(alerts)
    for index, group in enumerate(messages):
        later = [alert.id for rest in messages[index + 1 :] for alert in rest]
        limited_until = _rate_limited_until(deps, target, policy, now)
        if limited_until is not None:
            held = [alert.id for alert in group] + later
            deps.store.defer_alerts(held, limited_until, batched=True)
            log.info("rate limit of %s: %d alerts wait until %s", target, len(held), limited_until)
            report.held += len(held)
            break
        outcome, message_key = _send(deps, url, target, group)
        if outcome.ok:
            for alert in group:
                deps.store.mark_sent(alert.id, now, message_key)
                if deps.metrics is not None:
                    deps.metrics.delivered(target, (now - alert.created_at).total_seconds())
            if len(group) == 1:
                log.info("sent to %s: 1 alert", target)
            else:
                log.info("sent to %s: %d alerts in one message", target, len(group))
            report.sent += len(group)
            report.messages += 1
            continue
        failed, retry_at = _failed(deps, target, group, outcome.error or "failed", now)
        report += failed
        if later and retry_at is not None:
            # Keep the target's order: its later alerts wait for the failed one's retry.
            deps.store.defer_alerts(later, retry_at, batched=False)
        break
    return report


def _rate_limited_until(
    deps: DeliveryDeps, target: str, policy: TargetPolicy, now: datetime
) -> datetime | None:
    if policy.max is None:
        return None
    sent = deps.store.sent_times(target, now - policy.max.window)
    return pacing.rate_limited_until(policy.max, sent, now)


def _send(
    deps: DeliveryDeps, url: str | None, target: str, group: Sequence[Alert]
) -> tuple[SendOutcome, str | None]:
    if url is None:
        return SendOutcome(False, f"target {target!r} is not in the config's notify:"), None
    message = render_group(group_by_entry(group), kind_for_url(url), _override(deps, target, group))
    return deps.send(url, message), message.key


def _override(deps: DeliveryDeps, target: str, group: Sequence[Alert]) -> TemplateOverride | None:
    """The operator's templates: the rule's (when the message has one rule), else the target's."""
    rules = {alert.rule for alert in group}
    source = deps.rule_templates.get(rules.pop()) if len(rules) == 1 else None
    source = source or deps.policies.get(target, NO_POLICY).template
    if source is None:
        return None
    return TemplateOverride(title=source.title, body=source.body)


def _retry_at(deps: DeliveryDeps, alert: Alert, now: datetime) -> datetime | None:
    """When to try again; None: give up (out of attempts, or older than max_age)."""
    if now - alert.created_at >= deps.settings.max_age:
        return None
    return timing.next_delivery_attempt(
        now=now,
        attempts=alert.attempts + 1,
        base=deps.settings.retry,
        cap=deps.settings.max_retry,
        max_attempts=deps.settings.max_attempts,
        jitter=deps.jitter(),
    )


def _failed(
    deps: DeliveryDeps, target: str, group: Sequence[Alert], error: str, now: datetime
) -> tuple[DeliveryReport, datetime | None]:
    """Record a failed send; returns the report and the latest retry time of the group."""
    report = DeliveryReport()
    latest: datetime | None = None
    for alert in group:
        retry_at = _retry_at(deps, alert, now)
        if retry_at is not None:
            latest = max(latest or retry_at, retry_at)
        deps.store.mark_failed(alert.id, error, now, retry_at)
        if deps.metrics is not None:
            deps.metrics.delivery_failed(target)
        if retry_at is None:
            log.error(
                "alert %d to %s is dead after %d attempts: %s (watcher alerts retry %d)",
                alert.id,
                target,
                alert.attempts + 1,
                error,
                alert.id,
            )
            report.dead += 1
        else:
            log.warning(
                "alert %d to %s failed (attempt %d): %s; retrying at %s",
                alert.id,
                target,
                alert.attempts + 1,
                error,
                f"{retry_at:%Y-%m-%d %H:%M:%S}",
            )
            report.retrying += 1
    return report, latest
