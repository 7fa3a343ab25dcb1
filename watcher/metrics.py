"""Prometheus metrics and the small HTTP server that exposes them (/metrics, /healthz).

The only module that imports prometheus_client, and only when `Metrics` is built: a daemon
without `metrics:` in its config records into a `Recorder`, which keeps nothing (and saves
the daemon prometheus_client's memory). The service calls typed methods on either; label
values are checked here so the number of series stays bounded (outcomes, states and status
codes are fixed sets; feed, rule and target names come from the config).
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from collections.abc import Callable, Collection, Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import urlsplit

from watcher.models import AlertState

log = logging.getLogger(__name__)

POLL_OUTCOMES = ("ok", "not_modified", "error")
ENTRY_KINDS = ("new", "duplicate")
DELIVERY_OUTCOMES = ("sent", "failed")
RULE_LOAD_OUTCOMES = ("ok", "error")

# created -> sent: seconds when all is well, hours when a target was down and retried
LATENCY_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)
TICK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

HEALTH_FLOOR_SECONDS = 60.0

Health = Callable[[], tuple[bool, str]]


def status_label(status: int | None) -> str:
    """The fetch status label: the HTTP code, "none" without an answer, "other" if bogus."""
    if status is None:
        return "none"
    return str(status) if 100 <= status <= 599 else "other"


class Recorder:
    """What the daemon reports as it runs. This one keeps only when the last tick finished;
    `Metrics` also exports everything to Prometheus."""

    def __init__(self) -> None:
        self._last_tick_finished: float | None = None

    @property
    def last_tick_finished(self) -> float | None:
        """Unix time the last tick finished, None before the first; for `tick_health`."""
        return self._last_tick_finished

    def poll(self, feed: str, outcome: str) -> None:
        _check(outcome, POLL_OUTCOMES, "poll outcome")

    def fetch_status(self, status: int | None) -> None:
        pass

    def parse_error(self) -> None:
        pass

    def entries(self, new: int, duplicate: int) -> None:
        pass

    def matches(self, rule: str, count: int = 1) -> None:
        pass

    def alerts_state(self, counts: Mapping[AlertState, int]) -> None:
        pass

    def delivered(self, target: str, latency_seconds: float) -> None:
        pass

    def delivery_failed(self, target: str) -> None:
        pass

    def tick(self, duration_seconds: float, finished_at_unix: float) -> None:
        self._last_tick_finished = finished_at_unix

    def rules_loaded(self, count: int, ok: bool) -> None:
        pass

    def retain(
        self,
        *,
        feeds: Collection[str] | None = None,
        rules: Collection[str] | None = None,
        targets: Collection[str] | None = None,
    ) -> None:
        pass


class Metrics(Recorder):
    """Every series the daemon exports, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            PlatformCollector,
            ProcessCollector,
        )

        super().__init__()
        self.registry = CollectorRegistry(auto_describe=True)
        self._feeds: set[str] = set()
        self._rules: set[str] = set()
        self._targets: set[str] = set()
        self._lock = threading.Lock()  # guards the three name sets above
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self._polls = Counter(
            "watcher_polls", "Feed polls by outcome.", ["feed", "outcome"], registry=r
        )
        self._fetch_status = Counter(
            "watcher_fetch_responses",
            'Fetch results by HTTP status ("none": no HTTP answer).',
            ["status"],
            registry=r,
        )
        self._parse_errors = Counter(
            "watcher_parse_errors", "Feeds that were not well-formed.", registry=r
        )
        self._entries = Counter(
            "watcher_entries", "Entries seen in polled feeds.", ["kind"], registry=r
        )
        self._matches = Counter(
            "watcher_rule_matches", "Entries matched, by rule.", ["rule"], registry=r
        )
        self._alerts = Gauge(
            "watcher_alerts", "Alerts in the outbox, by state.", ["state"], registry=r
        )
        self._deliveries = Counter(
            "watcher_deliveries",
            "Delivery attempts by target and outcome.",
            ["target", "outcome"],
            registry=r,
        )
        self._latency = Histogram(
            "watcher_delivery_latency_seconds",
            "Time from an alert's creation to its delivery.",
            ["target"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._tick_duration = Histogram(
            "watcher_tick_duration_seconds",
            "Duration of a scheduler tick.",
            buckets=TICK_BUCKETS,
            registry=r,
        )
        self._last_tick = Gauge(
            "watcher_last_tick_timestamp_seconds",
            "Unix time the last scheduler tick finished.",
            registry=r,
        )
        self._rules_loaded = Gauge("watcher_rules", "Rules in effect.", registry=r)
        self._rules_ok = Gauge(
            "watcher_rules_last_load_success",
            "1 if the last rules (re)load succeeded, 0 if the previous rules stayed in use.",
            registry=r,
        )
        self._rule_loads = Counter(
            "watcher_rule_loads", "Rules (re)loads by outcome.", ["outcome"], registry=r
        )
        # fixed label sets start at 0, so rate() and alerts work before the first event
        for outcome in RULE_LOAD_OUTCOMES:
            self._rule_loads.labels(outcome)
        for kind in ENTRY_KINDS:
            self._entries.labels(kind)
        for state in AlertState:
            self._alerts.labels(state.value)

    def poll(self, feed: str, outcome: str) -> None:
        _check(outcome, POLL_OUTCOMES, "poll outcome")
        self._remember(self._feeds, feed)
        self._polls.labels(feed, outcome).inc()

    def fetch_status(self, status: int | None) -> None:
        self._fetch_status.labels(status_label(status)).inc()

    def parse_error(self) -> None:
        self._parse_errors.inc()

    def entries(self, new: int, duplicate: int) -> None:
        self._entries.labels("new").inc(new)
        self._entries.labels("duplicate").inc(duplicate)

    def matches(self, rule: str, count: int = 1) -> None:
        self._remember(self._rules, rule)
        self._matches.labels(rule).inc(count)

    def alerts_state(self, counts: Mapping[AlertState, int]) -> None:
        """Set the outbox gauges from the store's counts; a state not in `counts` is 0."""
        for state in AlertState:
            self._alerts.labels(state.value).set(counts.get(state, 0))

    def delivered(self, target: str, latency_seconds: float) -> None:
        self._remember(self._targets, target)
        self._deliveries.labels(target, "sent").inc()
        self._latency.labels(target).observe(max(latency_seconds, 0.0))

    def delivery_failed(self, target: str) -> None:
        self._remember(self._targets, target)
        self._deliveries.labels(target, "failed").inc()

    def tick(self, duration_seconds: float, finished_at_unix: float) -> None:
        self._tick_duration.observe(max(duration_seconds, 0.0))
        self._last_tick.set(finished_at_unix)
        self._last_tick_finished = finished_at_unix

    def rules_loaded(self, count: int, ok: bool) -> None:
        """After a (re)load: `count` rules are in effect (the old ones when `ok` is False)."""
        self._rules_loaded.set(count)
        self._rules_ok.set(1 if ok else 0)
        self._rule_loads.labels("ok" if ok else "error").inc()

    def retain(
        self,
        *,
        feeds: Collection[str] | None = None,
        rules: Collection[str] | None = None,
        targets: Collection[str] | None = None,
    ) -> None:
        """After a config reload: drop the series of feeds, rules, targets no longer there."""
        with self._lock:
            if feeds is not None:
                for feed in self._feeds - set(feeds):
                    self._polls.remove_by_labels({"feed": feed})
                self._feeds &= set(feeds)
            if rules is not None:
                for rule in self._rules - set(rules):
                    self._matches.remove(rule)
                self._rules &= set(rules)
            if targets is not None:
                for target in self._targets - set(targets):
                    self._deliveries.remove_by_labels({"target": target})
                    self._latency.remove(target)
                self._targets &= set(targets)

    def _remember(self, names: set[str], name: str) -> None:
        if name not in names:
            with self._lock:
                names.add(name)


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def tick_health(
    last_tick_finished: float | None, now: float, tick_seconds: float
) -> tuple[bool, str]:
    """Healthy when a tick finished within max(3 ticks, 60 s); unhealthy before the first."""
    if last_tick_finished is None:
        return False, "starting: no scheduler tick has finished yet"
    limit = max(3 * tick_seconds, HEALTH_FLOOR_SECONDS)
    age = max(now - last_tick_finished, 0.0)  # a clock stepped back is not a stall
    if age > limit:
        return False, f"stalled: last tick finished {age:.0f}s ago (limit {limit:.0f}s)"
    return True, f"last tick finished {age:.0f}s ago"


class MetricsServer:
    """/metrics and /healthz over HTTP, served by one daemon thread."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        health: Health,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for); only after start()."""
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the metrics server is already started")
        server = _Server(self._host, self._requested_port, self._metrics, self._health)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="watcher-metrics",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread

    def close(self) -> None:
        """Stop serving, close the socket, join the thread; safe to call twice."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class _Server(HTTPServer):
    def __init__(self, host: str, port: int, metrics: Metrics, health: Health) -> None:
        # HTTPServer is IPv4 unless told otherwise; follow the configured address
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, sockaddr = info[0]
        self.address_family = family
        self.metrics = metrics
        self.health = health
        super().__init__((str(sockaddr[0]), port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):  # the scraper hung up; not our fault
            log.debug("metrics server: %s disconnected", client_address)
        else:
            log.exception("metrics server: error while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a stuck client must not hold the only serving thread for long
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            from prometheus_client.exposition import choose_encoder

            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, encoder(self.server.metrics.registry), content_type)
        elif path == "/healthz":
            self._healthz()
        else:
            self._reply(404, b"not found; try /metrics or /healthz\n")

    def _healthz(self) -> None:
        try:
            ok, message = self.server.health()
        except Exception as exc:  # a broken check is an unhealthy daemon, not a dead server
            log.exception("health check failed")
            ok, message = False, f"health check failed: {exc}"
        if ok:
            self._reply(200, f"ok: {message}\n".encode())
        else:
            self._reply(503, f"{message}\n".encode())

    def _reply(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics server: " + format, *args)
