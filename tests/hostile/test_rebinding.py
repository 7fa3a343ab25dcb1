"""DNS rebinding: the address checked is the address connected to.

A name that answers a public address when checked and 127.0.0.1 a moment later must not
reach 127.0.0.1. Names resolve through a scripted resolver, never through real DNS, and
every connection made goes to 127.0.0.1.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.feed_server import FeedServer
from tests.support.feeds import Item, rss
from tests.support.resolver import ScriptedResolver
from watcher.fetch import Fetcher
from watcher.models import FetchRequest, FetchResult, FetchSettings

PUBLIC = "8.8.8.8"  # only ever the answer to the check before a request: never connected to
pytestmark = pytest.mark.usefixtures("loopback_only")
HINT = "set fetch.allow_private_networks: true to allow"
FEED = rss([Item("g1", "A story", "https://example.org/1")])


def on_port(server: FeedServer, host: str, path: str = "/feed.xml") -> str:
    return server.url(path).replace("127.0.0.1", host)


def test_a_name_rebinding_to_loopback_after_the_check_is_refused_where_it_connects(
    feed_server: FeedServer,
) -> None:
    feed_server.serve("/feed.xml", FEED)
    resolver = ScriptedResolver({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})

    with Fetcher(resolver=resolver) as fetcher:
        result = fetcher.fetch(FetchRequest(on_port(feed_server, "rebind.test")))

    assert result.error == f"refused: rebind.test resolves to 127.0.0.1, a private address ({HINT})"
    assert resolver.calls == ["rebind.test", "rebind.test"]  # the check, then the connection
    assert feed_server.requests == []


def test_the_connection_goes_to_the_resolved_address_with_the_name_in_the_host_header(
    feed_server: FeedServer,
) -> None:
    feed_server.serve("/feed.xml", FEED)
    resolver = ScriptedResolver({"feed.test": [["127.0.0.1"]]})  # unknown to the system
    settings = FetchSettings(allow_private_networks=True)

    with Fetcher(resolver=resolver) as fetcher:
        result = fetcher.fetch(FetchRequest(on_port(feed_server, "feed.test"), settings))

    assert result.ok, result.error
    assert result.body == FEED
    (request,) = feed_server.requests
    assert request.headers["host"].startswith("feed.test:")


def test_a_name_that_does_not_resolve_is_a_clear_error(feed_server: FeedServer) -> None:
    resolver = ScriptedResolver()
    for settings in (FetchSettings(), FetchSettings(allow_private_networks=True)):
        with Fetcher(resolver=resolver) as fetcher:
            result = fetcher.fetch(FetchRequest("http://feed.invalid/rss.xml", settings))
        assert result.error == "cannot resolve feed.invalid: Name or service not known"


def test_one_private_answer_where_it_connects_refuses_the_name(feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", FEED)
    resolver = ScriptedResolver({"mixed.test": [[PUBLIC], ["127.0.0.1", PUBLIC]]})

    with Fetcher(resolver=resolver) as fetcher:
        result = fetcher.fetch(FetchRequest(on_port(feed_server, "mixed.test")))

    assert result.error == f"refused: mixed.test resolves to 127.0.0.1, a private address ({HINT})"
    assert feed_server.requests == []


# --- TLS keeps the name while connecting to the pinned address ---


class TlsServer:
    """HTTPS on 127.0.0.1 with a certificate for one name; remembers the SNI it was sent."""

    def __init__(self, certificate: Path, key: Path) -> None:
        self.server_names: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)

        def remember(sock: Any, name: str | None, ctx: ssl.SSLContext) -> None:
            self.server_names.append(name)

        context.sni_callback = remember

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(FEED)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(FEED)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(10)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=feed.test",
            "-addext",
            "subjectAltName=DNS:feed.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[TlsServer]:
    server = TlsServer(*certificate)
    yield server
    server.close()


def https_get(resolver: ScriptedResolver, cert: Path, url: str) -> FetchResult:
    settings = FetchSettings(allow_private_networks=True)
    trusting = ssl.create_default_context(cafile=str(cert))
    with Fetcher(resolver=resolver, tls=trusting) as fetcher:
        return fetcher.fetch(FetchRequest(url, settings))


def test_tls_verifies_and_sends_the_name_while_connecting_to_the_pinned_address(
    tls_server: TlsServer, certificate: tuple[Path, Path]
) -> None:
    resolver = ScriptedResolver({"feed.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})

    result = https_get(resolver, certificate[0], f"https://feed.test:{tls_server.port}/")
    assert result.ok, result.error
    assert result.body == FEED
    assert tls_server.server_names == ["feed.test"]

    refused = https_get(resolver, certificate[0], f"https://other.test:{tls_server.port}/")
    assert refused.error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in refused.error
    assert refused.body == b""


def test_addresses_are_tried_in_order_until_one_answers(feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", FEED)
    resolver = ScriptedResolver({"two.test": [["::1", "127.0.0.1"]]})
    settings = FetchSettings(allow_private_networks=True)

    with Fetcher(resolver=resolver) as fetcher:  # the feed server listens on IPv4 only
        result = fetcher.fetch(FetchRequest(on_port(feed_server, "two.test"), settings))

    assert result.ok, result.error
