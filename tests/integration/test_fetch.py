"""Fetcher against a real HTTP server on 127.0.0.1 (and real files for file://)."""

from __future__ import annotations

import base64
import http.client
import ipaddress
import os
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support.feed_server import FeedServer, running_feed_server
from watcher.fetch import (
    ACCEPT,
    ACCEPT_ENCODING,
    GONE,
    Fetcher,
    _Inflater,
    settings_problem,
)
from watcher.models import USER_AGENT, FetchRequest, FetchSettings
from watcher.netguard import address_refusal

FEED = b'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title></channel></rss>'
LAST_MODIFIED = "Tue, 25 Nov 2025 10:00:00 GMT"
HINT = "set fetch.allow_private_networks: true to allow"


@pytest.fixture
def fetcher() -> Iterator[Fetcher]:
    with Fetcher() as fetcher:
        yield fetcher


def local(**overrides: float | int | bool) -> FetchSettings:
    """Settings for the test server, which lives on a private address."""
    values: dict[str, float | int | bool] = {"allow_private_networks": True, "timeout": 5.0}
    values.update(overrides)
    return FetchSettings(**values)  # type: ignore[arg-type]


def get(url: str, **overrides: float | int | bool) -> FetchRequest:
    return FetchRequest(url=url, settings=local(**overrides))


# --- plain and conditional GET ---


def test_200_captures_validators_and_sends_our_headers(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/feed.xml", FEED, etag='"v1"', last_modified=LAST_MODIFIED)

    result = fetcher.fetch(get(feed_server.url("/feed.xml")))

    assert result.ok
    assert (result.status, result.body, result.error) == (200, FEED, None)
    assert result.etag == '"v1"'
    assert result.last_modified == LAST_MODIFIED
    assert result.headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert result.final_url == result.url == feed_server.url("/feed.xml")
    assert result.permanent_redirect is None
    [sent] = feed_server.requests_for("/feed.xml")
    assert sent.headers["user-agent"] == USER_AGENT
    assert sent.headers["accept"] == ACCEPT
    assert sent.headers["accept-encoding"] == ACCEPT_ENCODING
    assert "if-none-match" not in sent.headers


def test_conditional_second_request_gets_304(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", FEED, etag='"v1"', last_modified=LAST_MODIFIED)
    first = fetcher.fetch(get(feed_server.url("/feed.xml")))

    second = fetcher.fetch(
        FetchRequest(
            url=feed_server.url("/feed.xml"),
            settings=local(),
            etag=first.etag,
            last_modified=first.last_modified,
        )
    )

    assert second.not_modified
    assert second.error is None
    assert second.body == b""
    assert (second.etag, second.last_modified) == ('"v1"', LAST_MODIFIED)
    sent = feed_server.requests_for("/feed.xml")[-1]
    assert sent.headers["if-none-match"] == '"v1"'
    assert sent.headers["if-modified-since"] == LAST_MODIFIED


def test_304_by_last_modified_alone(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", FEED, last_modified=LAST_MODIFIED)
    request = FetchRequest(feed_server.url("/feed.xml"), local(), last_modified=LAST_MODIFIED)

    assert fetcher.fetch(request).status == 304


def test_304_keeps_the_request_validators_when_not_repeated(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/feed.xml", b"", status=304)
    request = FetchRequest(
        feed_server.url("/feed.xml"), local(), etag='"v7"', last_modified=LAST_MODIFIED
    )

    result = fetcher.fetch(request)

    assert (result.status, result.etag, result.last_modified) == (304, '"v7"', LAST_MODIFIED)


def test_gzip_body_is_decoded(feed_server: FeedServer, fetcher: Fetcher) -> None:
    body = FEED * 200
    feed_server.serve("/feed.xml", body, gzip=True)

    result = fetcher.fetch(get(feed_server.url("/feed.xml")))

    assert result.ok
    assert result.headers["content-encoding"] == "gzip"
    assert int(result.headers["content-length"]) < len(body)
    assert result.body == body


def test_gzip_bomb_stops_at_the_size_limit(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/bomb.xml", b"\0" * 5_000_000, gzip=True)

    result = fetcher.fetch(get(feed_server.url("/bomb.xml"), max_bytes=100_000))

    assert result.error == "response larger than 100000 bytes"
    assert result.status == 200
    assert not result.ok


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
def test_deflate_zlib_wrapped_or_raw(wbits: int) -> None:
    compressor = zlib.compressobj(wbits=wbits)
    data = compressor.compress(FEED * 50) + compressor.flush()
    inflater = _Inflater.for_encoding("deflate")
    assert inflater is not None
    out = bytearray()

    for start in range(0, len(data), 7):
        assert inflater.feed(data[start : start + 7], out, 1_000_000)
    assert inflater.finish(out, 1_000_000)

    assert bytes(out) == FEED * 50


def test_unsupported_content_encoding_is_an_error(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/feed.xml", FEED, headers={"Content-Encoding": "br"})

    result = fetcher.fetch(get(feed_server.url("/feed.xml")))

    assert result.error == "unsupported Content-Encoding: br"


def test_a_corrupt_gzip_body_is_an_error(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", FEED, headers={"Content-Encoding": "gzip"})

    result = fetcher.fetch(get(feed_server.url("/feed.xml")))

    assert result.status == 200
    assert result.error is not None
    assert result.error.startswith("cannot decompress the response: ")


# --- redirects ---


def test_301_is_reported_as_permanent(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.redirect("/old.xml", "/feed.xml", 301)
    feed_server.serve("/feed.xml", FEED)

    result = fetcher.fetch(get(feed_server.url("/old.xml")))

    assert result.ok
    assert result.body == FEED
    assert result.url == feed_server.url("/old.xml")
    assert result.final_url == feed_server.url("/feed.xml")
    assert result.permanent_redirect == feed_server.url("/feed.xml")


def test_chain_of_301_and_308_is_permanent(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.redirect("/a", feed_server.url("/b"), 301)
    feed_server.redirect("/b", "c", 308)
    feed_server.serve("/c", FEED)

    result = fetcher.fetch(get(feed_server.url("/a")))

    assert result.permanent_redirect == feed_server.url("/c")


@pytest.mark.parametrize("statuses", [(302,), (301, 302), (307, 308), (303,)])
def test_any_temporary_hop_makes_the_redirect_temporary(
    feed_server: FeedServer, fetcher: Fetcher, statuses: tuple[int, ...]
) -> None:
    for hop, status in enumerate(statuses):
        feed_server.redirect(f"/hop{hop}", f"/hop{hop + 1}", status)
    feed_server.serve(f"/hop{len(statuses)}", FEED)

    result = fetcher.fetch(get(feed_server.url("/hop0")))

    assert result.ok
    assert result.final_url == feed_server.url(f"/hop{len(statuses)}")
    assert result.permanent_redirect is None


def test_redirect_loop(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.redirect("/a", "/b", 302)
    feed_server.redirect("/b", "/a", 302)

    result = fetcher.fetch(get(feed_server.url("/a")))

    assert result.error is not None
    assert result.error.startswith("redirect loop: ")
    assert result.status == 302
    assert len(feed_server.requests) == 2


def test_too_many_redirects(feed_server: FeedServer, fetcher: Fetcher) -> None:
    for hop in range(4):
        feed_server.redirect(f"/r{hop}", f"/r{hop + 1}", 301)
    feed_server.serve("/r4", FEED)

    assert fetcher.fetch(get(feed_server.url("/r0"), max_redirects=4)).ok
    result = fetcher.fetch(get(feed_server.url("/r0"), max_redirects=3))

    assert result.error == "too many redirects (more than 3)"
    assert result.final_url == feed_server.url("/r3")


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/feed.xml"])
def test_redirect_to_another_scheme_is_refused(
    feed_server: FeedServer, fetcher: Fetcher, location: str
) -> None:
    feed_server.redirect("/feed.xml", location, 302)

    result = fetcher.fetch(get(feed_server.url("/feed.xml")))

    assert result.error is not None
    assert result.error.startswith(f"refused: redirect to {location!r}")
    assert result.body == b""


def test_redirect_without_location_is_an_error(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", b"", status=302)

    result = fetcher.fetch(get(feed_server.url("/feed.xml")))

    assert (result.status, result.error) == (302, "HTTP 302 Found without a Location header")


# --- HTTP errors ---


def test_404(feed_server: FeedServer, fetcher: Fetcher) -> None:
    result = fetcher.fetch(get(feed_server.url("/missing.xml")))

    assert (result.status, result.error) == (404, "HTTP 404 Not Found")
    assert not result.ok


def test_503_keeps_retry_after_then_recovers(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", FEED)
    feed_server.fail("/feed.xml", 503, headers={"Retry-After": "120"}, times=1)

    failed = fetcher.fetch(get(feed_server.url("/feed.xml")))
    recovered = fetcher.fetch(get(feed_server.url("/feed.xml")))

    assert (failed.status, failed.error) == (503, "HTTP 503 Service Unavailable")
    assert failed.headers["retry-after"] == "120"
    assert failed.body == b""
    assert recovered.ok
    assert recovered.body == FEED


# --- limits ---


def test_content_length_over_the_limit_is_refused_before_reading(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/big.xml", b"x" * 2000)

    result = fetcher.fetch(get(feed_server.url("/big.xml"), max_bytes=1000))

    assert (result.status, result.error) == (200, "response larger than 1000 bytes")
    assert result.body == b""


def test_chunked_body_over_the_limit_is_cut_off(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/big.xml", b"x" * 300_000, chunked=True)

    result = fetcher.fetch(get(feed_server.url("/big.xml"), max_bytes=100_000))

    assert "content-length" not in result.headers
    assert result.error == "response larger than 100000 bytes"


def test_chunked_body_within_the_limit(feed_server: FeedServer, fetcher: Fetcher) -> None:
    body = FEED * 3000
    feed_server.serve("/feed.xml", body, chunked=True, gzip=True)

    result = fetcher.fetch(get(feed_server.url("/feed.xml")))

    assert result.headers["transfer-encoding"] == "chunked"
    assert result.body == body


def test_a_dripping_server_hits_the_deadline(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/slow.xml", b"x" * 1000, drip=0.05)
    started = time.monotonic()

    result = fetcher.fetch(get(feed_server.url("/slow.xml"), timeout=0.5))

    elapsed = time.monotonic() - started
    assert result.error == "timed out after 0.5s"
    assert result.status is None
    assert 0.5 <= elapsed < 1.5


def test_a_server_that_never_answers_hits_the_deadline(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/stuck.xml", FEED, delay=30)
    started = time.monotonic()

    result = fetcher.fetch(get(feed_server.url("/stuck.xml"), timeout=0.3))

    assert result.error == "timed out after 0.3s"
    assert time.monotonic() - started < 1.5


def test_the_server_threads_end_after_a_timed_out_drip() -> None:
    before = set(threading.enumerate())
    with running_feed_server() as server, Fetcher() as fetcher:
        server.serve("/slow.xml", b"x" * 1000, drip=0.05)
        assert fetcher.fetch(get(server.url("/slow.xml"), timeout=0.2)).error is not None

    assert set(threading.enumerate()) <= before


def test_the_deadline_covers_every_redirect_hop(feed_server: FeedServer) -> None:
    feed_server.redirect("/a", "/b", 302)
    feed_server.serve("/b", FEED)

    # Ten seconds pass as soon as the first hop has been answered.
    with Fetcher(clock=lambda: 10.0 if feed_server.requests else 0.0) as fetcher:
        result = fetcher.fetch(get(feed_server.url("/a"), timeout=5))

    assert result.error == "timed out after 5s"
    assert [r.path for r in feed_server.requests] == ["/a"]


# --- address policy and URL checks ---


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_address_refused_by_default(
    feed_server: FeedServer, fetcher: Fetcher, host: str
) -> None:
    feed_server.serve("/feed.xml", FEED)
    url = feed_server.url("/feed.xml").replace("127.0.0.1", host)

    result = fetcher.fetch(FetchRequest(url))

    assert result.status is None
    assert result.error is not None
    if host == "localhost":
        assert result.error.startswith("refused: localhost resolves to ")
        assert result.error.endswith(f", a private address ({HINT})")
    else:
        assert result.error == f"refused: 127.0.0.1 is a private address ({HINT})"
    assert feed_server.requests == []


def test_private_address_allowed_when_configured(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", FEED)
    settings = FetchSettings(allow_private_networks=True)

    assert fetcher.fetch(FetchRequest(feed_server.url("/feed.xml"), settings)).ok


@pytest.mark.parametrize(
    ("address", "refusal"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("10.1.2.3", "a private address"),
        ("192.168.0.1", "a private address"),
        ("169.254.169.254", "a private address"),
        ("100.64.0.1", "a private address"),
        ("0.0.0.0", "a private address"),
        ("::1", "a private address"),
        ("fe80::1", "a private address"),
        ("fd00::1", "a private address"),
        ("::ffff:127.0.0.1", "a private address"),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::a00:1", "a private address"),
        ("64:ff9b:1::1", "a private address"),
        ("2002:7f00:1::", "a private address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
    ],
)
def test_address_refusal(address: str, refusal: str | None) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == refusal


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://user:secret@127.0.0.1/feed.xml", "refused: a URL for 127.0.0.1 with user info"),
        ("ftp://127.0.0.1/feed.xml", "refused: 'ftp://127.0.0.1/feed.xml' (only http"),
        ("http://127.0.0.1/a b", "invalid URL 'http://127.0.0.1/a b'"),
        ("http:///feed.xml", "invalid URL"),
        ("http://feeds.example./feed.xml", "invalid URL"),
    ],
)
def test_bad_urls_are_refused_without_a_request(fetcher: Fetcher, url: str, error: str) -> None:
    result = fetcher.fetch(FetchRequest(url, local()))

    assert result.status is None
    assert result.error is not None
    assert result.error.startswith(error)
    assert "secret" not in result.error


def test_connection_refused_is_a_result(fetcher: Fetcher) -> None:
    with FeedServer() as server:
        url = server.url("/feed.xml")

    result = fetcher.fetch(get(url))

    assert result.status is None
    assert result.error is not None
    assert result.error.startswith(f"cannot connect to {url}")


# --- file:// ---


def test_file_url_with_304_while_unchanged(tmp_path: Path, fetcher: Fetcher) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(FEED)
    os.utime(path, (1_700_000_000, 1_700_000_000))

    first = fetcher.fetch(FetchRequest(path.as_uri()))
    second = fetcher.fetch(FetchRequest(path.as_uri(), last_modified=first.last_modified))
    os.utime(path, (1_700_000_100, 1_700_000_100))
    third = fetcher.fetch(FetchRequest(path.as_uri(), last_modified=first.last_modified))

    assert (first.status, first.body, first.error) == (200, FEED, None)
    assert first.last_modified == formatdate(1_700_000_000, usegmt=True)
    assert (second.status, second.body, second.last_modified) == (304, b"", first.last_modified)
    assert (third.status, third.body) == (200, FEED)
    assert third.last_modified == formatdate(1_700_000_100, usegmt=True)


def test_missing_file(tmp_path: Path, fetcher: Fetcher) -> None:
    path = tmp_path / "nope.xml"

    result = fetcher.fetch(FetchRequest(path.as_uri()))

    assert (result.status, result.error) == (None, f"file not found: {path}")


def test_file_over_the_limit(tmp_path: Path, fetcher: Fetcher) -> None:
    path = tmp_path / "big.xml"
    path.write_bytes(b"x" * 101)

    result = fetcher.fetch(FetchRequest(path.as_uri(), FetchSettings(max_bytes=100)))

    assert result.error == f"file larger than 100 bytes: {path}"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("file:feed.xml", "file URL needs an absolute path: file:feed.xml"),
        ("file://elsewhere/feed.xml", "file URL must name a local path"),
    ],
)
def test_bad_file_urls(fetcher: Fetcher, url: str, error: str) -> None:
    result = fetcher.fetch(FetchRequest(url))

    assert result.error is not None
    assert result.error.startswith(error)


def test_a_directory_is_not_a_feed(tmp_path: Path, fetcher: Fetcher) -> None:
    assert fetcher.fetch(FetchRequest(tmp_path.as_uri())).error == f"not a regular file: {tmp_path}"


# --- politeness: 429, 410 ---


def test_429_keeps_retry_after(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.fail("/feed.xml", 429, headers={"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT"})

    result = fetcher.fetch(get(feed_server.url("/feed.xml")))

    assert (result.status, result.error) == (429, "HTTP 429 Too Many Requests")
    assert result.headers["retry-after"] == "Wed, 21 Oct 2037 07:28:00 GMT"


def test_410_says_the_feed_is_gone(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.fail("/feed.xml", 410)

    result = fetcher.fetch(get(feed_server.url("/feed.xml")))

    assert (result.status, result.error) == (410, GONE)
    assert GONE == "gone (HTTP 410): the feed was removed"
    assert not result.ok


def test_410_after_a_permanent_redirect(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.redirect("/old.xml", "/new.xml", 301)
    feed_server.fail("/new.xml", 410)

    result = fetcher.fetch(get(feed_server.url("/old.xml")))

    assert (result.status, result.error) == (410, GONE)
    assert result.final_url == feed_server.url("/new.xml")


# --- proxies ---


class ForwardProxy:
    """A forward proxy for plain http on 127.0.0.1: absolute-form request lines in, and
    the request passed on to the origin named in them."""

    def __init__(self) -> None:
        self.targets: list[str] = []  # the request targets as received
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy.targets.append(self.path)
                parts = urlsplit(self.path)
                headers = {
                    name: value
                    for name, value in self.headers.items()
                    if name.lower() not in ("proxy-connection", "connection", "keep-alive")
                }
                upstream = http.client.HTTPConnection(parts.netloc, timeout=5)
                try:
                    path = parts.path + (f"?{parts.query}" if parts.query else "")
                    upstream.request("GET", path, headers=headers)
                    answer = upstream.getresponse()
                    body = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = False
        self._httpd.block_on_close = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def forward_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy()
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without proxy settings, for the test to add its own."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def via(proxy: str | None, **overrides: object) -> FetchSettings:
    return replace(local(), proxy=proxy, **overrides)  # type: ignore[arg-type]


def test_an_explicit_proxy_carries_the_request(
    feed_server: FeedServer, fetcher: Fetcher, forward_proxy: ForwardProxy
) -> None:
    feed_server.serve("/feed.xml", FEED)
    url = feed_server.url("/feed.xml")

    result = fetcher.fetch(FetchRequest(url, via(forward_proxy.url)))

    assert (result.status, result.body, result.error) == (200, FEED, None)
    assert forward_proxy.targets == [url]  # absolute form: the proxy was asked for the URL
    [sent] = feed_server.requests_for("/feed.xml")
    assert sent.headers["user-agent"] == USER_AGENT


def test_env_proxy_follows_http_proxy_and_no_proxy(
    feed_server: FeedServer,
    fetcher: Fetcher,
    forward_proxy: ForwardProxy,
    proxy_env: pytest.MonkeyPatch,
) -> None:
    feed_server.serve("/feed.xml", FEED)
    url = feed_server.url("/feed.xml")
    proxy_env.setenv("HTTP_PROXY", forward_proxy.url)

    proxied = fetcher.fetch(FetchRequest(url, via("env")))
    ignored = fetcher.fetch(FetchRequest(url, via(None)))  # no proxy unless the feed says so
    proxy_env.setenv("NO_PROXY", "example.org, 127.0.0.0/8")
    bypassed = fetcher.fetch(FetchRequest(url, via("env")))

    assert (proxied.ok, ignored.ok, bypassed.ok) == (True, True, True)
    assert forward_proxy.targets == [url]
    assert len(feed_server.requests_for("/feed.xml")) == 3


def test_env_proxy_without_proxy_variables_goes_direct(
    feed_server: FeedServer, fetcher: Fetcher, proxy_env: pytest.MonkeyPatch
) -> None:
    feed_server.serve("/feed.xml", FEED)

    assert fetcher.fetch(FetchRequest(feed_server.url("/feed.xml"), via("env"))).ok


def test_the_address_check_still_applies_behind_a_proxy(
    feed_server: FeedServer, fetcher: Fetcher, forward_proxy: ForwardProxy
) -> None:
    feed_server.serve("/feed.xml", FEED)
    settings = FetchSettings(proxy=forward_proxy.url)  # private networks not allowed

    result = fetcher.fetch(FetchRequest(feed_server.url("/feed.xml"), settings))

    assert result.error == f"refused: 127.0.0.1 is a private address ({HINT})"
    assert forward_proxy.targets == []


def test_a_dead_proxy_is_named_without_its_password(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    with FeedServer() as gone:
        port = gone.base_url.rsplit(":", 1)[1]
    url = feed_server.url("/feed.xml")

    result = fetcher.fetch(FetchRequest(url, via(f"http://user:secret@127.0.0.1:{port}")))

    assert result.status is None
    assert result.error is not None
    assert result.error.startswith(f"cannot connect to {url} via proxy http://***@127.0.0.1:")
    assert "secret" not in result.error


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        (FetchSettings(proxy="socks5://127.0.0.1:1080"), "unsupported proxy socks5://"),
        (FetchSettings(proxy="ftp://u:pw@proxy"), "unsupported proxy ftp://***@proxy"),
        (FetchSettings(headers=(("Bad Name", "x"),)), "invalid header name 'Bad Name'"),
        (FetchSettings(headers=(("X-A", "a\r\nX-B: b"),)), "header X-A: line breaks"),
        (FetchSettings(headers=(("Accept-Encoding", "br"),)), "header Accept-Encoding is set"),
        (FetchSettings(headers=(("Host", "evil"),)), "header Host is set by watcher"),
        (FetchSettings(auth=("a:b", "pw")), "basic auth: the user name cannot contain ':'"),
        (
            FetchSettings(auth=("a", "pw"), headers=(("authorization", "Bearer t"),)),
            "basic auth and an Authorization header cannot both be set",
        ),
        (FetchSettings(proxy="env", headers=(("X-Key", "v"),), auth=("a", "b")), None),
    ],
)
def test_settings_problems(settings: FetchSettings, problem: str | None) -> None:
    found = settings_problem(settings)

    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert found.startswith(problem)
        assert "pw" not in found


def test_bad_settings_are_an_error_without_a_request(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.serve("/feed.xml", FEED)
    settings = via(None, headers=(("Host", "evil"),))

    result = fetcher.fetch(FetchRequest(feed_server.url("/feed.xml"), settings))

    assert result.error == "header Host is set by watcher and cannot be configured"
    assert feed_server.requests == []


def test_settings_keep_secrets_out_of_their_repr() -> None:
    settings = FetchSettings(
        proxy="http://u:proxy-pw@p:3128", headers=(("X-Key", "k3y"),), auth=("u", "pw")
    )

    assert "pw" not in repr(settings)
    assert "k3y" not in repr(settings)


# --- per-feed headers and basic auth ---

BASIC = "Basic " + base64.b64encode(b"reader:s3cret").decode()


def test_feed_headers_and_basic_auth_are_sent(feed_server: FeedServer, fetcher: Fetcher) -> None:
    feed_server.serve("/feed.xml", FEED)
    settings = via(
        None, headers=(("X-Api-Key", "k1"), ("User-Agent", "custom/1")), auth=("reader", "s3cret")
    )

    assert fetcher.fetch(FetchRequest(feed_server.url("/feed.xml"), settings)).ok

    [sent] = feed_server.requests_for("/feed.xml")
    assert sent.headers["x-api-key"] == "k1"
    assert sent.headers["user-agent"] == "custom/1"
    assert sent.headers["authorization"] == BASIC
    assert sent.headers["accept-encoding"] == ACCEPT_ENCODING


def test_credentials_follow_a_redirect_on_the_same_host_only(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    feed_server.redirect("/a", "/b", 302)  # same host
    other_host = feed_server.url("/c").replace("://127.0.0.1:", "://localhost:")
    feed_server.redirect("/b", other_host, 302)
    feed_server.serve("/c", FEED)
    settings = via(
        None, headers=(("X-Api-Key", "k1"), ("Cookie", "s=1")), auth=("reader", "s3cret")
    )

    assert fetcher.fetch(FetchRequest(feed_server.url("/a"), settings)).ok

    a, b, c = feed_server.requests
    assert [r.headers["host"].split(":")[0] for r in (a, b, c)] == [
        "127.0.0.1",
        "127.0.0.1",
        "localhost",
    ]
    for same_host in (a, b):
        assert same_host.headers["authorization"] == BASIC
        assert same_host.headers["cookie"] == "s=1"
    assert "authorization" not in c.headers
    assert "cookie" not in c.headers
    assert c.headers["x-api-key"] == "k1"  # not a credential header: it goes along


def test_credentials_do_not_follow_to_another_port(
    feed_server: FeedServer, fetcher: Fetcher
) -> None:
    with running_feed_server() as other:
        other.serve("/feed.xml", FEED)
        feed_server.redirect("/a", other.url("/feed.xml"), 301)
        settings = via(None, auth=("reader", "s3cret"))

        assert fetcher.fetch(FetchRequest(feed_server.url("/a"), settings)).ok

        assert feed_server.requests[0].headers["authorization"] == BASIC
        assert "authorization" not in other.requests[0].headers
