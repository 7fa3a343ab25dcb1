"""Build small RSS documents for tests."""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Item:
    guid: str
    title: str
    link: str
    description: str = ""
    pub_date: str = "Thu, 07 Aug 2025 08:00:00 GMT"


def rss(items: list[Item], title: str = "Test wire") -> bytes:
    body = "".join(
        f"<item><title>{escape(item.title)}</title><link>{escape(item.link)}</link>"
        f'<guid isPermaLink="false">{escape(item.guid)}</guid>'
        f"<description>{escape(item.description)}</description>"
        f"<pubDate>{item.pub_date}</pubDate></item>"
        for item in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://example.org/</link>"
        f"<description>test</description>{body}</channel></rss>"
    ).encode()
