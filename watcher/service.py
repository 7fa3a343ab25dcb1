"""Wiring: a Watcher owns the store, the fetcher and the compiled rules; the daemon drives
it with APScheduler and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType, TracebackType

from apscheduler.schedulers.blocking import BlockingScheduler

from watcher.config import Config, RuleBook, load_config
from watcher.delivery import DeliveryDeps, DeliveryReport, deliver_due
from watcher.errors import StoreError, WatcherError
from watcher.fetch import Fetcher
from watcher.logs import set_secrets
from watcher.metrics import Metrics, MetricsServer, Recorder, tick_health
from watcher.models import AlertState
from watcher.parse_pool import ParsePool, fix_mmap_threshold
from watcher.pipeline import PollDeps, PollOutcome
from watcher.poller import PollerEdges, poll_feeds
from watcher.reload import rules_fingerprint
from watcher.rules.matcher import RuleSet
from watcher.store import Store, open_store
from watcher.systemd import Heartbeat, notify

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
PARSE_WINDOW = 8  # parsed feeds waiting to be stored; bounds memory, keeps both cores busy


def utc_now() -> datetime:
    return datetime.now(UTC)


def settle_heap() -> None:
    """Collect the garbage of the start (or of a reload), then leave the objects that are
    left (modules, config, compiled rules: about 120,000) out of later collections.

    A full collection examines every object the collector tracks: about 75 ms for the
    daemon's (one every few polls of the ingest benchmark). Frozen objects are still
    freed when nothing refers to them; only a reference cycle among them would wait, for
    the next call (a reload unfreezes them first)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass(slots=True)
class TickReport:
    polled: list[PollOutcome] = field(default_factory=list)
    delivery: DeliveryReport = field(default_factory=DeliveryReport)
    error: str | None = None  # the store failed: the tick stopped, the next one tries again

    @property
    def new_entries(self) -> int:
        return sum(outcome.new for outcome in self.polled)

    @property
    def failed_feeds(self) -> int:
        return sum(not outcome.ok for outcome in self.polled)


class Watcher:
    """One instance of the service: poll due feeds, then deliver due alerts."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = utc_now,
        fetcher: Fetcher | None = None,
        parser: ParsePool | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        fix_mmap_threshold()  # feed bodies and parsed feeds go back to the system when freed
        self.config = config
        self.clock = clock
        self.jitter = jitter
        # Several instances may share one database: what this one claims carries its name,
        # stable across restarts so a restarted instance takes its unfinished work back.
        self.owner = os.environ.get("WATCHER_INSTANCE") or f"{socket.gethostname()}:{config.path}"
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.rulebook: RuleBook = config.rulebook
        self.rules = RuleSet.compile(config.rules, config.rulebook.entities)
        self._rules_fingerprint = rules_fingerprint(config.rules_path, config.rulebook.files)
        self.store: Store = open_store(config.store_url)
        try:
            self.store.sync_feeds(config.feeds, clock())
            self.store.release_leases(self.owner)
            self._record_rules_state(error=None)
        except BaseException:
            self.store.close()
            raise
        limits = config.fetch_limits
        # Fetched bodies wait in memory for the parser; more than the parse window ahead
        # of it only costs memory (their fetches start once older results are taken).
        self.fetcher = fetcher or Fetcher(
            max_in_flight=limits.max_in_flight,
            max_per_host=limits.max_per_host,
            max_ready=PARSE_WINDOW,
        )
        self.parser = parser or ParsePool()
        self._feed_configs = {feed.name: feed for feed in config.feeds}
        self.heartbeat = Heartbeat()
        self.ready = False
        self._leases_left = False  # a tick failed while holding leases: release them first
        # prometheus_client only when the metrics are served (a restart changes the address)
        self.metrics = Metrics() if config.metrics_listen is not None else Recorder()
        self.metrics.rules_loaded(len(self.rules.rules), ok=True)
        settle_heap()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.fetcher.close()
        self.parser.close()
        self.store.close()

    def poll(self, *, every_feed: bool = False) -> list[PollOutcome]:
        """Poll the feeds that are due (or every feed not gone), concurrently."""
        now = self.clock()
        feeds = (
            self.store.feeds()
            if every_feed
            else self.store.claim_due_feeds(now, self.config.lease, self.owner, limit=10_000)
        )
        work = [
            (feed, self._feed_configs[feed.name])
            for feed in feeds
            if feed.name in self._feed_configs and not feed.disabled_reason
        ]
        deps = PollDeps(store=self.store, rules=self.rules, jitter=self.jitter)
        edges = PollerEdges(
            fetch_many=self.fetcher.fetch_many,
            submit_parse=self.parser.submit_for,
            clock=self.clock,
            window=PARSE_WINDOW,
        )
        return poll_feeds(work, deps, edges, stop=self.stop_event, progress=self.heartbeat.beat)

    def deliver(self) -> DeliveryReport:
        deps = DeliveryDeps(
            store=self.store,
            targets=self.config.targets,
            settings=self.config.delivery,
            metrics=self.metrics,
            jitter=self.jitter,
            policies=self.config.policies,
            owner=self.owner,
            lease=self.config.lease,
            rule_templates={rule.name: rule.template for rule in self.rules.rules if rule.template},
        )
        return deliver_due(deps, self.clock(), stop=self.stop_event)

    def reload_if_needed(self) -> bool:
        """SIGHUP: read the whole config again; otherwise reload the rules if their files
        changed. Returns True when something new is in use."""
        if self.reload_requested.is_set():
            self.reload_requested.clear()
            return self._reload(full=True)
        return self.reload_rules_if_changed()

    def reload_rules_if_changed(self) -> bool:
        """Reload the rules when their files changed on disk.

        An invalid edit keeps the running rules; the error goes to the log and to
        `watcher status`. Returns True when new rules are in use.
        """
        current = rules_fingerprint(self.config.rules_path, self.rulebook.files)
        if current == self._rules_fingerprint:
            return False
        return self._reload(full=False)

    def _reload(self, *, full: bool) -> bool:
        config = self.config
        try:
            if full:
                config = load_config(self.config.path)
                rulebook = config.rulebook
            else:
                rulebook = self.config.reload_rules()
            rules = RuleSet.compile(rulebook.rules, rulebook.entities)
        except WatcherError as exc:
            self._rules_fingerprint = rules_fingerprint(self.config.rules_path, self.rulebook.files)
            what = "config" if full else "rules"
            log.error("%s not reloaded, the previous %s stay in use:\n%s", what, what, exc)
            self._record_rules_state(error=str(exc))
            self.metrics.rules_loaded(len(self.rules.rules), ok=False)
            return False
        if full:
            self._use_config(config)
        self.rulebook, self.rules = rulebook, rules
        settle_heap()  # the previous rules and config go now
        self._rules_fingerprint = rules_fingerprint(config.rules_path, rulebook.files)
        for warning in rulebook.warnings:
            log.warning("%s", warning)
        log.info("rules reloaded: %d rules from %d files", len(rules.rules), len(rulebook.files))
        self._record_rules_state(error=None)
        self.metrics.rules_loaded(len(rules.rules), ok=True)
        self.metrics.retain(
            rules=[rule.name for rule in rules.rules],
            feeds=[feed.name for feed in config.feeds],
            targets=list(config.targets),
        )
        return True

    def _use_config(self, config: Config) -> None:
        """Feeds, targets, limits and templates from a reloaded config. The store, the
        fetch limits and the metrics address only change with a restart."""
        if config.store_url != self.config.store_url:
            log.warning("the store changed in the config: restart watcher to use it")
            config = dataclasses.replace(config, store_url=self.config.store_url)
        self.store.sync_feeds(config.feeds, self.clock())
        self.config = config
        self._feed_configs = {feed.name: feed for feed in config.feeds}
        set_secrets(config.secrets)
        log.info("config reloaded: %d feeds, %d targets", len(config.feeds), len(config.targets))

    def _record_rules_state(self, *, error: str | None) -> None:
        state = {
            "rules": len(self.rules.rules),
            "loaded_at": self.clock().isoformat() if error is None else None,
            "error": error,
            "error_at": self.clock().isoformat() if error is not None else None,
        }
        previous = self.store.note("rules")
        if error is not None and previous:
            state["loaded_at"] = json.loads(previous).get("loaded_at")
        self.store.set_note("rules", json.dumps(state))

    def tick(self, *, every_feed: bool = False) -> TickReport:
        """Poll, deliver, report. When the store fails (locked, full, unreachable), the
        tick stops with a clear error in the log and in its report: what was committed
        stays, what was not is polled or sent again by a later tick."""
        started = time.monotonic()
        self.reload_if_needed()
        try:
            report = self._tick(every_feed=every_feed, started=started)
        except StoreError as exc:
            self._leases_left = True
            log.error(
                "tick failed, the store is not usable: %s; "
                "nothing committed is lost, the next tick tries again",
                exc,
            )
            # Alive and retrying: systemd hears from it, /healthz turns unhealthy if it lasts.
            self._heartbeat(f"STATUS=store unavailable, retrying each tick: {exc}")
            return TickReport(error=str(exc))
        if report.polled or report.delivery.sent or report.delivery.retrying:
            log.info(
                "tick: %d feeds polled (%d failed), %d new entries, %d alerts sent, %d retrying",
                len(report.polled),
                report.failed_feeds,
                report.new_entries,
                report.delivery.sent,
                report.delivery.retrying,
            )
        return report

    def _tick(self, *, every_feed: bool, started: float) -> TickReport:
        if self._leases_left:
            # The failed tick's feeds and alerts are this instance's: take them back now
            # rather than when their leases expire (no tick of this instance is running).
            self.store.release_leases(self.owner)
            self._leases_left = False
        report = TickReport(polled=self.poll(every_feed=every_feed))
        report.delivery = self.deliver()
        self._record_tick(report)
        counts = self.store.alert_counts()  # one query for the metrics and systemd's STATUS
        self._count(report, counts, time.monotonic() - started)
        self._tell_systemd(report, counts)
        return report

    def _count(self, report: TickReport, counts: Mapping[AlertState, int], duration: float) -> None:
        for outcome in report.polled:
            status = "error" if outcome.error else "not_modified" if outcome.not_modified else "ok"
            self.metrics.poll(outcome.feed, status)
            self.metrics.fetch_status(outcome.status)
            if outcome.parse_error:
                self.metrics.parse_error()
            self.metrics.entries(outcome.new, outcome.entries - outcome.new)
            for rule in outcome.matched_rules:
                self.metrics.matches(rule)
        self.metrics.alerts_state(counts)
        self.metrics.tick(duration, time.time())

    def _record_tick(self, report: TickReport) -> None:
        """What `watcher status` shows as the last tick (the daemon is another process)."""
        note = {
            "finished_at": self.clock().isoformat(),
            "polled": len(report.polled),
            "failed": report.failed_feeds,
            "new_entries": report.new_entries,
            "sent": report.delivery.sent,
            "retrying": report.delivery.retrying,
            "dead": report.delivery.dead,
        }
        self.store.set_note("last_tick", json.dumps(note))

    def _tell_systemd(self, report: TickReport, counts: Mapping[AlertState, int]) -> None:
        """READY=1 after the first tick, then a one-line STATUS and a heartbeat each tick."""
        feeds = self.store.feeds()
        failing = sum(1 for feed in feeds if feed.error_count)
        pending = counts[AlertState.PENDING]
        status = (
            f"STATUS={len(feeds)} feeds ({failing} failing), {pending} alerts pending, "
            f"last tick {self.clock():%H:%M:%S} UTC: {report.new_entries} new entries, "
            f"{report.delivery.sent} alerts sent"
        )
        self._heartbeat(status)

    def _heartbeat(self, status: str) -> None:
        """READY=1 the first time, then the STATUS line and a watchdog ping."""
        notify(*(["READY=1"] if not self.ready else []), status, "WATCHDOG=1")
        self.ready = True


def run_daemon(watcher: Watcher) -> None:
    """Tick every `config.tick` until SIGTERM or SIGINT; the first tick runs at once.

    A signal lets the feed in flight finish (its transaction commits or rolls back as a
    whole), then the scheduler stops.
    """
    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_job(
        watcher.tick,
        "interval",
        seconds=watcher.config.tick.total_seconds(),
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=None,
        id="tick",
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        notify("STOPPING=1")
        watcher.stop_event.set()
        watcher.fetcher.interrupt()  # do not wait for slow feeds: they are polled next time
        # Runs in the main thread while the tick runs in the executor's thread: wait for
        # the feed in flight to finish, then the scheduler's loop ends.
        scheduler.shutdown(wait=True)

    def reload(signum: int, frame: FrameType | None) -> None:
        log.info("received SIGHUP, reloading the config and the rules")
        watcher.reload_requested.set()
        scheduler.modify_job("tick", next_run_time=datetime.now(UTC))

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, reload)
    log.info(
        "watcher running: %d feeds, %d rules, %d targets, store %s",
        len(watcher.config.feeds),
        len(watcher.config.rules),
        len(watcher.config.targets),
        watcher.config.store_url.split("@")[-1],
    )
    server = _metrics_server(watcher)
    try:
        scheduler.start()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.close()


def _metrics_server(watcher: Watcher) -> MetricsServer | None:
    if watcher.config.metrics_listen is None or not isinstance(watcher.metrics, Metrics):
        return None
    host, port = watcher.config.metrics_listen
    tick_seconds = watcher.config.tick.total_seconds()

    def health() -> tuple[bool, str]:
        return tick_health(watcher.metrics.last_tick_finished, time.time(), tick_seconds)

    server = MetricsServer(watcher.metrics, host=host, port=port, health=health)
    server.start()
    log.info("metrics on http://%s:%d/metrics, health on /healthz", host, server.port)
    return server
