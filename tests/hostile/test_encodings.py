"""Content encodings watcher did not ask for: brotli, stacked and unknown codings.

watcher asks for gzip and deflate only, the codings it decodes itself with a cap on the
output. A body in any other coding is refused with a clear error, never decoded (so a
brotli bomb cannot expand) and never handed to the parser as if it were XML.
"""

from __future__ import annotations

import os

import pytest

from tests.support.feed_server import FeedServer
from watcher.fetch import ACCEPT_ENCODING, Fetcher
from watcher.models import FetchRequest, FetchSettings

LOCAL = FetchSettings(allow_private_networks=True, max_bytes=100_000)


def test_only_the_codings_decoded_with_a_limit_are_asked_for(feed_server: FeedServer) -> None:
    feed_server.serve("/feed.xml", b"<rss/>")
    with Fetcher() as fetcher:
        assert fetcher.fetch(FetchRequest(feed_server.url("/feed.xml"), LOCAL)).ok

    (request,) = feed_server.requests
    asked = {coding.strip() for coding in request.headers["accept-encoding"].split(",")}
    assert asked == {"gzip", "deflate"} == set(ACCEPT_ENCODING.replace(" ", "").split(","))


@pytest.mark.parametrize("coding", ["br", "BR", "gzip, br", "br, gzip", "zstd", "compress"])
def test_a_coding_not_asked_for_is_refused_without_decoding(
    feed_server: FeedServer, coding: str
) -> None:
    # Random bytes stand for a brotli bomb: they are never looked at, whatever they are.
    feed_server.serve("/feed.xml", os.urandom(50_000), headers={"Content-Encoding": coding})

    with Fetcher() as fetcher:
        result = fetcher.fetch(FetchRequest(feed_server.url("/feed.xml"), LOCAL))

    assert result.error == f"unsupported Content-Encoding: {coding}"
    assert result.status == 200
    assert result.body == b""
