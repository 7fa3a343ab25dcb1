"""A real HTTP server on 127.0.0.1 that serves feeds the way a test tells it to.

Routes are registered by path (the query string is ignored unless a route names it).
Every request is recorded. Besides plain answers a route can be conditional (ETag /
Last-Modified -> 304), gzip-compressed, chunked without a Content-Length, slow to answer,
or slow to send (a drip); failures and redirects are routes too.

A route can also wait behind a named gate until the test opens it. The server counts the
requests it holds (received, not yet answered) per Host and overall, remembers the peaks,
and notices a client that hangs up while held: tests wait for these with bounded timeouts
instead of sleeping. Every held request is answered before its count drops, never after,
so a peak never exceeds what the client really had in flight.

    with running_feed_server() as server:
        server.serve("/feed.xml", b"<rss .../>", etag='"v1"')
        fetch(server.url("/feed.xml"))

Or take the ``feed_server`` fixture: ``pytest_plugins = ["tests.support.feed_server"]`` in
tests/conftest.py (in a test module it fails once another module has imported this one).
"""

from __future__ import annotations

import gzip as gzip_module
import select
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

_RSS = "application/rss+xml; charset=utf-8"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str  # as sent, with the query string
    headers: Mapping[str, str]  # names in lower case


@dataclass(slots=True)
class _Content:
    body: bytes
    status: int = 200
    content_type: str = _RSS
    headers: Mapping[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False
    chunked: bool = False
    delay: float = 0.0
    drip: float | None = None
    drip_size: int = 1
    gate: str | None = None


@dataclass(slots=True)
class _Redirect:
    location: str
    status: int


@dataclass(slots=True)
class _Failure:
    status: int
    headers: Mapping[str, str]
    times: int | None  # None: until the route is replaced


class FeedServer:
    """A threaded HTTP server: a thread per connection, each connection closed after one answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Content | _Redirect] = {}
        self._failures: dict[str, _Failure] = {}
        self._requests: list[RecordedRequest] = []
        self._changed = threading.Condition(self._lock)
        self._held: dict[str, int] = {}  # by Host (no port); "" counts every host
        self._peaks: dict[str, int] = {}
        self._gates: dict[str, threading.Event] = {}
        self._abandoned: list[str] = []
        self._closing = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.feed_server = self
        port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"feed-server-{port}",
            daemon=True,
        )
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def serve(
        self,
        path: str,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = _RSS,
        headers: Mapping[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        gzip: bool = False,
        chunked: bool = False,
        delay: float = 0.0,
        drip: float | None = None,
        drip_size: int = 1,
        gate: str | None = None,
    ) -> None:
        """Answer ``path`` with ``body`` from now on (replacing whatever was there).

        gzip: compress when the client accepts gzip. chunked: no Content-Length, the body
        goes out in chunks. delay: seconds to wait before answering at all. drip: seconds
        to wait between pieces of ``drip_size`` bytes of the body. gate: hold each request
        until ``open_gate(gate)`` (or until the client hangs up, or the server closes).
        """
        content = _Content(
            body=body,
            status=status,
            content_type=content_type,
            headers=dict(headers or {}),
            etag=etag,
            last_modified=last_modified,
            gzip=gzip,
            chunked=chunked,
            delay=delay,
            drip=drip,
            drip_size=max(1, drip_size),
            gate=gate,
        )
        with self._lock:
            self._routes[path] = content
            self._failures.pop(path, None)

    def redirect(self, path: str, location: str, status: int = 301) -> None:
        with self._lock:
            self._routes[path] = _Redirect(location, status)
            self._failures.pop(path, None)

    def fail(
        self,
        path: str,
        status: int,
        headers: Mapping[str, str] | None = None,
        times: int | None = None,
    ) -> None:
        """Answer ``status`` ``times`` times (None: until replaced), then the route again."""
        if times is not None and times <= 0:
            return
        with self._lock:
            self._failures[path] = _Failure(status, dict(headers or {}), times)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path or urlsplit(r.path).path == path]

    def open_gate(self, name: str) -> None:
        """Let the requests held at ``name`` (and every later one) through."""
        self._gate(name).set()

    def peak(self, host: str | None = None) -> int:
        """The most requests held at once for ``host`` (None: all hosts together)."""
        with self._lock:
            return self._peaks.get(_host_key(host), 0)

    @property
    def abandoned(self) -> list[str]:
        """Paths of held requests whose client hung up."""
        with self._lock:
            return list(self._abandoned)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> bool:
        return self._wait_for(lambda: len(self._requests) >= count, timeout)

    def wait_for_held(self, count: int, host: str | None = None, timeout: float = 5.0) -> bool:
        """Until ``count`` requests for ``host`` (None: any) are held at the same time."""
        key = _host_key(host)
        return self._wait_for(lambda: self._held.get(key, 0) >= count, timeout)

    def wait_for_abandoned(self, count: int, timeout: float = 5.0) -> bool:
        return self._wait_for(lambda: len(self._abandoned) >= count, timeout)

    def close(self) -> None:
        """Stop serving, interrupt drips and delays, and wait for every handler thread."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FeedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Called from handler threads.

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._changed.notify_all()

    def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._lock:
            return self._changed.wait_for(predicate, timeout)

    def _gate(self, name: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(name, threading.Event())

    def _hold(self, host: str) -> None:
        with self._lock:
            for key in {"", _host_key(host)}:
                self._held[key] = self._held.get(key, 0) + 1
                self._peaks[key] = max(self._peaks.get(key, 0), self._held[key])
            self._changed.notify_all()

    def _release(self, host: str) -> None:
        with self._lock:
            for key in {"", _host_key(host)}:
                self._held[key] -= 1
            self._changed.notify_all()

    def _abandon(self, path: str) -> None:
        with self._lock:
            self._abandoned.append(path)
            self._changed.notify_all()

    def _route(self, target: str) -> _Content | _Redirect | _Failure | None:
        with self._lock:
            known = target in self._routes or target in self._failures
            path = target if known else urlsplit(target).path
            failure = self._failures.get(path)
            if failure is not None:
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        del self._failures[path]
                return _Failure(failure.status, failure.headers, None)
            return self._routes.get(path)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless the server is closing; False when it is."""
        return not self._closing.wait(seconds)


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close, so no test leaves a thread behind.
    daemon_threads = False
    block_on_close = True
    feed_server: FeedServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # for chunked bodies; every answer still closes the connection
    timeout = 5  # a client that connects and sends nothing does not hold close() up forever
    server: _Server

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, *, send_body: bool) -> None:
        owner = self.server.feed_server
        headers = {name.lower(): value for name, value in self.headers.items()}
        host = headers.get("host", "")
        owner._hold(host)
        released = False
        try:
            owner._record(RecordedRequest(self.command, self.path, headers))
            route = owner._route(self.path)
            if isinstance(route, _Content) and not self._wait(owner, route):
                return
            owner._release(host)  # before a byte of the answer goes out
            released = True
            self._respond(owner, route, headers, send_body=send_body)
        finally:
            if not released:
                owner._release(host)

    def _wait(self, owner: FeedServer, route: _Content) -> bool:
        """Hold the request at its gate, then for its delay; False: do not answer."""
        if route.gate is not None:
            gate = owner._gate(route.gate)
            while not gate.wait(0.01):
                if owner._closing.is_set():
                    return False
                if self._client_gone():
                    owner._abandon(urlsplit(self.path).path)
                    return False
        return not route.delay or owner._wait(route.delay)

    def _client_gone(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    def _respond(
        self,
        owner: FeedServer,
        route: _Content | _Redirect | _Failure | None,
        headers: Mapping[str, str],
        *,
        send_body: bool,
    ) -> None:
        try:
            if route is None:
                self._plain(404, b"not found\n", {})
            elif isinstance(route, _Failure):
                self._plain(route.status, f"status {route.status}\n".encode(), route.headers)
            elif isinstance(route, _Redirect):
                self._plain(route.status, b"", {"Location": route.location})
            else:
                self._content(owner, route, headers, send_body=send_body)
        except OSError:
            pass  # the client gave up (a timeout or size limit under test)

    def _plain(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _content(
        self,
        owner: FeedServer,
        route: _Content,
        request_headers: Mapping[str, str],
        *,
        send_body: bool,
    ) -> None:
        validators = {}
        if route.etag is not None:
            validators["ETag"] = route.etag
        if route.last_modified is not None:
            validators["Last-Modified"] = route.last_modified
        if _not_modified(route, request_headers):
            self.send_response(304)
            for name, value in validators.items():
                self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            return

        body = route.body
        encoded = route.gzip and "gzip" in request_headers.get("accept-encoding", "")
        if encoded:
            body = gzip_module.compress(body)
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        if encoded:
            self.send_header("Content-Encoding", "gzip")
        if route.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(body)))
        for name, value in {**validators, **route.headers}.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if not send_body:
            return
        for piece in _pieces(body, route):
            self.wfile.write(_chunk(piece) if route.chunked else piece)
            self.wfile.flush()
            if route.drip is not None and not owner._wait(route.drip):
                return
        if route.chunked:
            self.wfile.write(b"0\r\n\r\n")


def _host_key(host: str | None) -> str:
    """A Host header (or a host name) without its port, in lower case; None: every host."""
    if not host:
        return ""
    if host.startswith("["):
        return host[1 : host.find("]")].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def _pieces(body: bytes, route: _Content) -> Iterator[bytes]:
    size = route.drip_size if route.drip is not None else 16 * 1024
    for start in range(0, len(body), size):
        yield body[start : start + size]


def _chunk(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


def _not_modified(route: _Content, request_headers: Mapping[str, str]) -> bool:
    if_none_match = request_headers.get("if-none-match")
    if route.etag is not None and if_none_match is not None:
        tags = {tag.strip() for tag in if_none_match.split(",")}
        return "*" in tags or route.etag in tags
    if_modified_since = request_headers.get("if-modified-since")
    if route.last_modified is not None and if_modified_since is not None:
        try:
            return parsedate_to_datetime(route.last_modified) <= parsedate_to_datetime(
                if_modified_since
            )
        except (TypeError, ValueError):
            return route.last_modified == if_modified_since
    return False


@contextmanager
def running_feed_server() -> Iterator[FeedServer]:
    server = FeedServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with running_feed_server() as server:
        yield server
