"""The metrics server on 127.0.0.1 (port 0), read over real HTTP, and the health rule."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from watcher.metrics import Metrics, MetricsServer, Recorder, tick_health
from watcher.models import AlertState

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Reply:
    status: int
    content_type: str
    body: str


@dataclass
class HealthSwitch:
    ok: bool = True
    message: str = "last tick finished 1s ago"

    def __call__(self) -> tuple[bool, str]:
        return self.ok, self.message


def get(port: int, path: str, accept: str | None = None) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        response = conn.getresponse()
        return Reply(
            response.status, response.getheader("Content-Type", ""), response.read().decode()
        )
    finally:
        conn.close()


def scrape(port: int) -> Series:
    reply = get(port, "/metrics")
    assert reply.status == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.body)
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def health() -> HealthSwitch:
    return HealthSwitch()


@pytest.fixture
def server(metrics: Metrics, health: HealthSwitch) -> Iterator[MetricsServer]:
    with MetricsServer(metrics, health=health) as server:
        yield server


def test_metrics_show_every_series_after_the_calls(metrics: Metrics, server: MetricsServer) -> None:
    metrics.poll("example", "ok")
    metrics.poll("example", "ok")
    metrics.poll("example", "error")
    metrics.poll("other", "not_modified")
    metrics.fetch_status(200)
    metrics.fetch_status(None)
    metrics.fetch_status(999)
    metrics.parse_error()
    metrics.entries(new=5, duplicate=7)
    metrics.matches("rust", 2)
    metrics.matches("rust")
    metrics.alerts_state({AlertState.PENDING: 3, AlertState.DEAD: 1})
    metrics.delivered("mail", 2.0)
    metrics.delivery_failed("mail")
    metrics.tick(0.3, finished_at_unix=1_764_000_000.0)
    metrics.rules_loaded(12, ok=True)
    metrics.rules_loaded(12, ok=False)

    s = scrape(server.port)

    assert value(s, "watcher_polls_total", feed="example", outcome="ok") == 2
    assert value(s, "watcher_polls_total", feed="example", outcome="error") == 1
    assert value(s, "watcher_polls_total", feed="other", outcome="not_modified") == 1
    assert value(s, "watcher_fetch_responses_total", status="200") == 1
    assert value(s, "watcher_fetch_responses_total", status="none") == 1
    assert value(s, "watcher_fetch_responses_total", status="other") == 1
    assert value(s, "watcher_parse_errors_total") == 1
    assert value(s, "watcher_entries_total", kind="new") == 5
    assert value(s, "watcher_entries_total", kind="duplicate") == 7
    assert value(s, "watcher_rule_matches_total", rule="rust") == 3
    assert value(s, "watcher_alerts", state="pending") == 3
    assert value(s, "watcher_alerts", state="sent") == 0
    assert value(s, "watcher_alerts", state="dead") == 1
    assert value(s, "watcher_deliveries_total", target="mail", outcome="sent") == 1
    assert value(s, "watcher_deliveries_total", target="mail", outcome="failed") == 1
    assert value(s, "watcher_delivery_latency_seconds_count", target="mail") == 1
    assert value(s, "watcher_delivery_latency_seconds_sum", target="mail") == 2.0
    assert value(s, "watcher_delivery_latency_seconds_bucket", target="mail", le="1.0") == 0
    assert value(s, "watcher_delivery_latency_seconds_bucket", target="mail", le="5.0") == 1
    assert value(s, "watcher_tick_duration_seconds_count") == 1
    assert value(s, "watcher_last_tick_timestamp_seconds") == 1_764_000_000.0
    assert value(s, "watcher_rules") == 12
    assert value(s, "watcher_rules_last_load_success") == 0
    assert value(s, "watcher_rule_loads_total", outcome="ok") == 1
    assert value(s, "watcher_rule_loads_total", outcome="error") == 1
    assert metrics.last_tick_finished == 1_764_000_000.0


def test_fixed_label_sets_start_at_zero(server: MetricsServer) -> None:
    s = scrape(server.port)
    for state in AlertState:
        assert value(s, "watcher_alerts", state=state.value) == 0
    assert value(s, "watcher_entries_total", kind="new") == 0
    assert value(s, "watcher_rule_loads_total", outcome="error") == 0


def test_unknown_poll_outcome_is_refused(metrics: Metrics) -> None:
    with pytest.raises(ValueError, match="unknown poll outcome 'exploded'"):
        metrics.poll("example", "exploded")


def test_a_recorder_keeps_only_the_last_tick_and_refuses_what_metrics_refuse() -> None:
    recorder = Recorder()  # the daemon's, when no metrics: are configured
    assert recorder.last_tick_finished is None

    recorder.poll("example", "ok")
    recorder.entries(new=5, duplicate=7)
    recorder.tick(0.3, finished_at_unix=1_764_000_000.0)

    assert recorder.last_tick_finished == 1_764_000_000.0
    assert vars(recorder) == {"_last_tick_finished": 1_764_000_000.0}
    with pytest.raises(ValueError, match="poll outcome"):
        recorder.poll("example", "fine")


def test_retain_drops_series_of_removed_feeds_rules_and_targets(
    metrics: Metrics, server: MetricsServer
) -> None:
    for name in ("kept", "gone"):
        metrics.poll(name, "ok")
        metrics.matches(name)
        metrics.delivered(name, 1.0)
        metrics.delivery_failed(name)

    metrics.retain(feeds={"kept"}, rules={"kept"}, targets={"kept"})

    s = scrape(server.port)
    labels = {
        dict(label_set).get(key) for (_, label_set) in s for key in ("feed", "rule", "target")
    }
    assert "kept" in labels
    assert "gone" not in labels


def test_openmetrics_is_served_when_asked_for(server: MetricsServer) -> None:
    reply = get(server.port, "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert reply.status == 200
    assert reply.content_type.startswith("application/openmetrics-text")
    assert reply.body.endswith("# EOF\n")


def test_healthz_follows_the_health_callable(server: MetricsServer, health: HealthSwitch) -> None:
    reply = get(server.port, "/healthz")
    assert (reply.status, reply.body) == (200, "ok: last tick finished 1s ago\n")

    health.ok, health.message = False, "starting: no scheduler tick has finished yet"
    reply = get(server.port, "/healthz")
    assert (reply.status, reply.body) == (503, "starting: no scheduler tick has finished yet\n")


def test_a_failing_health_check_is_unhealthy_not_a_crash(metrics: Metrics) -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("store unreachable")

    with MetricsServer(metrics, health=broken) as server:
        reply = get(server.port, "/healthz")
        assert reply.status == 503
        assert "store unreachable" in reply.body
        assert get(server.port, "/metrics").status == 200  # still serving


@pytest.mark.parametrize("path", ["/", "/metricsx", "/healthz/extra", "/favicon.ico"])
def test_other_paths_are_404(server: MetricsServer, path: str) -> None:
    assert get(server.port, path).status == 404


def test_query_strings_are_ignored(server: MetricsServer) -> None:
    assert get(server.port, "/healthz?verbose=1").status == 200


def test_close_stops_the_thread_and_the_socket(metrics: Metrics, health: HealthSwitch) -> None:
    before = set(threading.enumerate())
    server = MetricsServer(metrics, health=health)
    server.start()
    port = server.port
    assert get(port, "/healthz").status == 200
    assert len(set(threading.enumerate()) - before) == 1

    server.close()
    server.close()  # twice is fine

    assert set(threading.enumerate()) - before == set()
    with pytest.raises(ConnectionRefusedError):
        get(port, "/healthz")
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port


def test_two_instances_do_not_clash(health: HealthSwitch) -> None:
    first, second = Metrics(), Metrics()
    first.poll("example", "ok")
    second.matches("rust", 4)
    with (
        MetricsServer(first, health=health) as one,
        MetricsServer(second, health=health) as two,
    ):
        assert one.port != two.port
        a, b = scrape(one.port), scrape(two.port)
    assert value(a, "watcher_polls_total", feed="example", outcome="ok") == 1
    assert value(b, "watcher_polls_total", feed="example", outcome="ok") is None
    assert value(b, "watcher_rule_matches_total", rule="rust") == 4
    assert value(a, "watcher_rule_matches_total", rule="rust") is None


NOW = 1_764_000_000.0


@pytest.mark.parametrize(
    ("last", "now", "tick", "healthy", "message"),
    [
        (None, NOW, 60.0, False, "starting: no scheduler tick has finished yet"),
        (NOW, NOW, 60.0, True, "last tick finished 0s ago"),
        (NOW - 179, NOW, 60.0, True, "last tick finished 179s ago"),
        (NOW - 180, NOW, 60.0, True, "last tick finished 180s ago"),
        (NOW - 181, NOW, 60.0, False, "stalled: last tick finished 181s ago (limit 180s)"),
        # short ticks still get the 60 s floor
        (NOW - 59, NOW, 5.0, True, "last tick finished 59s ago"),
        (NOW - 61, NOW, 5.0, False, "stalled: last tick finished 61s ago (limit 60s)"),
        # a clock stepped back is not a stall
        (NOW + 30, NOW, 60.0, True, "last tick finished 0s ago"),
    ],
)
def test_tick_health(
    last: float | None, now: float, tick: float, healthy: bool, message: str
) -> None:
    assert tick_health(last, now, tick) == (healthy, message)
