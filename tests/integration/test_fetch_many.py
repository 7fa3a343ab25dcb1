"""Fetcher.fetch_many against the real local server: limits, completion order, early close.

Held requests (a route behind a gate) make concurrency observable without timing: the server
counts the requests it holds per host. A check that something does *not* happen waits a
short bounded while for it; it can pass wrongly on a slow machine, never fail wrongly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.feed_server import FeedServer
from watcher.fetch import Fetcher
from watcher.models import FetchRequest, FetchResult, FetchSettings

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'
LOCAL = FetchSettings(allow_private_networks=True, timeout=10.0)
NOT_HAPPENING = 0.3  # seconds to give something that must not happen a chance to


def request(url: str) -> FetchRequest:
    return FetchRequest(url=url, settings=LOCAL)


def on_localhost(url: str) -> str:
    """The same server under another host name, for per-host limits."""
    return url.replace("://127.0.0.1:", "://localhost:")


@pytest.fixture
def threads_before() -> set[threading.Thread]:
    return set(threading.enumerate())


def new_threads(before: set[threading.Thread]) -> set[threading.Thread]:
    """Threads started since, other than the server's handlers (they end on their own)."""
    return {
        thread
        for thread in set(threading.enumerate()) - before
        if "process_request_thread" not in thread.name
    }


def test_every_request_gets_its_result_with_its_index(feed_server: FeedServer) -> None:
    feed_server.serve("/a.xml", FEED)
    feed_server.serve("/b.xml", FEED + b" ")
    urls = [feed_server.url("/a.xml"), feed_server.url("/b.xml"), feed_server.url("/a.xml")]
    urls.append(feed_server.url("/missing.xml"))

    with Fetcher() as fetcher:
        results = list(fetcher.fetch_many(request(url) for url in urls))

    assert sorted(r.index for r in results if r.index is not None) == [0, 1, 2, 3]
    by_index = {r.index: r for r in results}
    assert [by_index[i].url for i in range(4)] == urls  # the same URL twice: two results
    assert (by_index[0].body, by_index[1].body, by_index[2].body) == (FEED, FEED + b" ", FEED)
    assert (by_index[3].status, by_index[3].error) == (404, "HTTP 404 Not Found")


def test_files_and_refusals_come_back_too(feed_server: FeedServer, tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    requests = [
        FetchRequest(path.as_uri()),
        FetchRequest(feed_server.url("/feed.xml")),  # a private address, not allowed
        FetchRequest("ftp://127.0.0.1/feed.xml", LOCAL),
    ]

    with Fetcher() as fetcher:
        results = {r.index: r for r in fetcher.fetch_many(requests)}

    assert (results[0].status, results[0].body) == (200, FEED)
    assert results[1].error is not None
    assert results[1].error.startswith("refused: 127.0.0.1 is a private address")
    assert results[2].error is not None
    assert results[2].error.startswith("refused: 'ftp://127.0.0.1/feed.xml'")
    assert feed_server.requests == []


def test_nothing_to_fetch() -> None:
    with Fetcher() as fetcher:
        assert list(fetcher.fetch_many([])) == []


def test_a_slow_host_does_not_delay_the_others(feed_server: FeedServer) -> None:
    for n in range(3):
        feed_server.serve(f"/slow{n}.xml", FEED, gate="slow")
    for n in range(10):
        feed_server.serve(f"/fast{n}.xml", FEED)
    slow = [on_localhost(feed_server.url(f"/slow{n}.xml")) for n in range(3)]
    fast = [feed_server.url(f"/fast{n}.xml") for n in range(10)]

    # The third slow feed waits for its host without taking the last global slot.
    with Fetcher(max_in_flight=3, max_per_host=2) as fetcher:
        results = fetcher.fetch_many(request(url) for url in slow + fast)
        first = [next(results) for _ in fast]
        # Every fast feed is in while the slow host still holds its two requests.
        assert feed_server.wait_for_held(2, host="localhost")
        feed_server.open_gate("slow")
        rest = list(results)

    assert sorted(r.url for r in first) == sorted(fast)
    assert all(r.ok for r in first + rest)
    assert sorted(r.url for r in rest) == sorted(slow)


def test_at_most_max_per_host_requests_go_to_one_host(feed_server: FeedServer) -> None:
    for n in range(6):
        feed_server.serve(f"/f{n}.xml", FEED, gate="g")
    urls = [feed_server.url(f"/f{n}.xml") for n in range(6)]
    urls += [on_localhost(url) for url in urls]

    with Fetcher(max_in_flight=32, max_per_host=2) as fetcher:
        results = fetcher.fetch_many(request(url) for url in urls)
        thread = threading.Thread(target=lambda: collected.extend(results))
        collected: list[FetchResult] = []
        thread.start()
        # Both hosts at their limit at once: one host's queue does not hold up the other.
        assert feed_server.wait_for_held(2, host="127.0.0.1")
        assert feed_server.wait_for_held(2, host="localhost")
        assert not feed_server.wait_for_held(5, timeout=NOT_HAPPENING)
        feed_server.open_gate("g")
        thread.join(timeout=10)

    assert len(collected) == 12
    assert all(r.ok for r in collected)
    assert (feed_server.peak("127.0.0.1"), feed_server.peak("localhost")) == (2, 2)
    assert feed_server.peak() == 4


def test_at_most_max_in_flight_requests_overall(feed_server: FeedServer) -> None:
    for n in range(8):
        feed_server.serve(f"/f{n}.xml", FEED, gate="g")
    urls = [feed_server.url(f"/f{n}.xml") for n in range(8)]

    with Fetcher(max_in_flight=3, max_per_host=8) as fetcher:
        results = fetcher.fetch_many(request(url) for url in urls)
        collected: list[FetchResult] = []
        thread = threading.Thread(target=lambda: collected.extend(results))
        thread.start()
        assert feed_server.wait_for_held(3)
        assert not feed_server.wait_for_held(4, timeout=NOT_HAPPENING)
        feed_server.open_gate("g")
        thread.join(timeout=10)

    assert len(collected) == 8
    assert feed_server.peak() == 3


def test_hundreds_of_feeds_within_the_limits(feed_server: FeedServer) -> None:
    for n in range(150):
        feed_server.serve(f"/f{n}.xml", FEED + str(n).encode())
    urls = [feed_server.url(f"/f{n}.xml") for n in range(150)]
    urls += [on_localhost(url) for url in urls]

    with Fetcher(max_in_flight=16, max_per_host=6) as fetcher:
        results = list(fetcher.fetch_many(request(url) for url in urls))

    assert sorted(r.index for r in results if r.index is not None) == list(range(300))
    assert all(r.ok and r.body == FEED + str((r.index or 0) % 150).encode() for r in results)
    assert feed_server.peak("127.0.0.1") <= 6
    assert feed_server.peak("localhost") <= 6
    assert feed_server.peak() <= 12


def test_fetch_from_several_threads_at_once(feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", FEED)
    results: list[FetchResult] = []

    with Fetcher(max_per_host=2) as fetcher:
        threads = [
            threading.Thread(
                target=lambda: results.append(fetcher.fetch(request(feed_server.url("/feed.xml"))))
            )
            for _ in range(8)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)

    assert [r.ok for r in results] == [True] * 8
    assert feed_server.peak() <= 2


def test_results_not_taken_stop_new_fetches(feed_server: FeedServer) -> None:
    for n in range(10):
        feed_server.serve(f"/f{n}.xml", FEED)
    urls = [feed_server.url(f"/f{n}.xml") for n in range(10)]

    with Fetcher(max_in_flight=2, max_per_host=10, max_ready=1) as fetcher:
        results = fetcher.fetch_many(request(url) for url in urls)
        taken = [next(results)]
        # One taken, then at most max_in_flight + max_ready more before the next is taken.
        assert feed_server.wait_for_requests(4)
        assert not feed_server.wait_for_requests(5, timeout=NOT_HAPPENING)
        taken += list(results)

    assert len(taken) == 10
    assert len(feed_server.requests) == 10


def test_closing_the_iterator_early_cancels_the_rest(
    feed_server: FeedServer, threads_before: set[threading.Thread]
) -> None:
    feed_server.serve("/fast.xml", FEED)
    for n in range(5):
        feed_server.serve(f"/held{n}.xml", FEED, gate="never")
    urls = [feed_server.url("/fast.xml")] + [feed_server.url(f"/held{n}.xml") for n in range(5)]

    with Fetcher(max_per_host=8) as fetcher:
        results = fetcher.fetch_many(request(url) for url in urls)
        first = next(results)
        assert feed_server.wait_for_held(5)
        results.close()

        # Every held request's connection was closed by the client, not left open.
        assert feed_server.wait_for_abandoned(5)
        assert sorted(feed_server.abandoned) == [f"/held{n}.xml" for n in range(5)]
        # The Fetcher goes on working.
        assert fetcher.fetch(request(feed_server.url("/fast.xml"))).ok

    assert first.url == feed_server.url("/fast.xml")
    assert new_threads(threads_before) == set()


def test_an_abandoned_iterator_that_never_started_fetches_nothing(
    feed_server: FeedServer,
) -> None:
    feed_server.serve("/feed.xml", FEED)

    with Fetcher() as fetcher:
        results = fetcher.fetch_many([request(feed_server.url("/feed.xml"))])
        results.close()

    assert feed_server.requests == []


def test_closing_the_fetcher_ends_an_iteration_in_another_thread(
    feed_server: FeedServer, threads_before: set[threading.Thread]
) -> None:
    feed_server.serve("/held.xml", FEED, gate="never")
    fetcher = Fetcher()
    results = fetcher.fetch_many([request(feed_server.url("/held.xml"))])
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            list(results)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=consume)
    thread.start()
    assert feed_server.wait_for_held(1)
    fetcher.close()
    thread.join(timeout=10)

    assert [str(e) for e in errors] == ["the Fetcher was closed while fetching"]
    assert feed_server.wait_for_abandoned(1)
    assert new_threads(threads_before) == set()
    with pytest.raises(RuntimeError, match="the Fetcher is closed"):
        fetcher.fetch(request(feed_server.url("/held.xml")))


def test_the_deadline_starts_when_the_fetch_does_not_while_it_waits(
    feed_server: FeedServer,
) -> None:
    feed_server.serve("/held.xml", FEED, gate="g")
    feed_server.serve("/feed.xml", FEED)
    settings = FetchSettings(allow_private_networks=True, timeout=5.0)
    now = [0.0]

    with Fetcher(max_in_flight=1, clock=lambda: now[0]) as fetcher:
        results = fetcher.fetch_many(
            [
                FetchRequest(feed_server.url("/held.xml"), settings),
                FetchRequest(feed_server.url("/feed.xml"), settings),
            ]
        )
        collected: list[FetchResult] = []
        thread = threading.Thread(target=lambda: collected.extend(results))
        thread.start()
        assert feed_server.wait_for_held(1)
        now[0] = 100.0  # the held fetch overran; the waiting one has not started yet
        feed_server.open_gate("g")
        thread.join(timeout=10)

    by_index = {r.index: r for r in collected}
    assert by_index[0].error == "timed out after 5s"
    assert by_index[1].ok


# --- connections: kept alive, one pool of one connection per lane ---


class KeepAliveServer:
    """An HTTP/1.1 server that keeps connections open, answers If-None-Match with 304 and
    records which connection (client port) each request came on, and which are still open."""

    ETAG = '"v1"'

    def __init__(self) -> None:
        self.ports: list[int] = []  # per request
        self.open: set[int] = set()
        self._changed = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server._changed:
                    server.open.add(self.client_address[1])
                    server._changed.notify_all()

            def finish(self) -> None:
                super().finish()
                with server._changed:
                    server.open.discard(self.client_address[1])
                    server._changed.notify_all()

            def do_GET(self) -> None:
                with server._changed:
                    server.ports.append(self.client_address[1])
                    server._changed.notify_all()
                unchanged = self.headers.get("If-None-Match") == KeepAliveServer.ETAG
                self.send_response(304 if unchanged else 200)
                self.send_header("ETag", KeepAliveServer.ETAG)
                if not unchanged:
                    self.send_header("Content-Length", str(len(FEED)))
                self.end_headers()
                if not unchanged:
                    self.wfile.write(FEED)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/feed.xml"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def connections(self) -> int:
        with self._changed:
            return len(set(self.ports))

    def wait_for_open(self, count: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.open) == count, timeout)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def keep_alive() -> Iterator[Callable[[], KeepAliveServer]]:
    servers: list[KeepAliveServer] = []

    def start() -> KeepAliveServer:
        servers.append(KeepAliveServer())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_304_answers_keep_their_connection(
    keep_alive: Callable[[], KeepAliveServer],
) -> None:
    server = keep_alive()
    conditional = FetchRequest(server.url, LOCAL, etag=KeepAliveServer.ETAG)

    with Fetcher() as fetcher:
        results = [fetcher.fetch(request(server.url))]
        results += [fetcher.fetch(conditional) for _ in range(5)]

    assert [r.status for r in results] == [200] + [304] * 5
    assert server.connections == 1


def test_each_origin_keeps_its_connection_while_there_are_lanes_enough(
    keep_alive: Callable[[], KeepAliveServer],
) -> None:
    first, second = keep_alive(), keep_alive()

    with Fetcher(max_in_flight=2) as fetcher:
        for _ in range(3):
            assert fetcher.fetch(request(first.url)).ok
            assert fetcher.fetch(request(second.url)).ok

    assert (first.connections, second.connections) == (1, 1)


def test_with_fewer_lanes_than_origins_the_idle_connection_is_replaced(
    keep_alive: Callable[[], KeepAliveServer],
) -> None:
    first, second = keep_alive(), keep_alive()

    with Fetcher(max_in_flight=1) as fetcher:
        for server in (first, second, first):
            assert fetcher.fetch(request(server.url)).ok
        # One lane, one connection: opening the next closed the one before.
        assert first.wait_for_open(1)
        assert second.wait_for_open(0)

    assert (first.connections, second.connections) == (2, 1)


def test_many_requests_at_once_use_at_most_max_in_flight_connections(
    keep_alive: Callable[[], KeepAliveServer],
) -> None:
    servers = [keep_alive() for _ in range(3)]
    urls = [server.url for server in servers] * 20

    with Fetcher(max_in_flight=4, max_per_host=4) as fetcher:
        results = list(fetcher.fetch_many(request(url) for url in urls))
        assert all(r.ok for r in results)
        assert sum(len(server.open) for server in servers) <= 4

    assert sum(server.connections for server in servers) < len(urls)
