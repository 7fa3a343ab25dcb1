"""Fixtures shared by every test: real servers on 127.0.0.1 and real stores."""

from tests.support.databases import store, store_url
from tests.support.feed_server import feed_server
from tests.support.resolver import loopback_only
from tests.support.sinks import smtp_sink, webhook_sink

__all__ = [
    "feed_server",
    "loopback_only",
    "smtp_sink",
    "store",
    "store_url",
    "webhook_sink",
]
