"""Turn a fetched body into a ParsedFeed: feedparser's output, cleaned into plain values.

The only module that imports feedparser. It is handed bytes, never a URL or a str:
feedparser fetches URLs and opens paths itself, around every guard in fetch.py.
"""

from __future__ import annotations

import html
import io
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.sax import SAXParseException

import feedparser

from watcher.models import ParsedEntry, ParsedFeed

# Bozo reasons that say nothing about the XML itself: the content type or the declared
# encoding was wrong, and feedparser recovered.
_HARMLESS = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Block-level tags separate words; inline tags (<b>, <a>) may sit inside a word.
_BLOCK_TAG = re.compile(
    r"<\s*/?\s*(?:br|p|div|li|ul|ol|h[1-6]|tr|td|th|table|blockquote|pre|hr)\b[^>]*>",
    re.IGNORECASE,
)
_ANY_TAG = re.compile(r"<\s*/?\s*[a-zA-Z!][^>]*>")


def parse_feed(body: bytes, headers: Mapping[str, str] | None = None) -> ParsedFeed:
    """Parse RSS 0.9x/1.0/2.0 or Atom; never raises for a bad feed, says so in ``error``."""
    if not body.strip():
        return ParsedFeed(title="", link=None, entries=(), error="not a feed: the body is empty")
    response_headers = {name.lower(): value for name, value in (headers or {}).items()}
    parsed = feedparser.parse(io.BytesIO(body), response_headers=response_headers)
    channel = _get(parsed, "feed") or {}
    entries = tuple(_entry(raw) for raw in _get(parsed, "entries") or ())
    error = _bozo_message(parsed)
    if not _get(parsed, "version") and not entries:
        error = f"not a feed: {error}" if error else "not a feed: no RSS or Atom content found"
    return ParsedFeed(
        title=_plain_text(channel, "title"),
        link=_text(_get(channel, "link")) or None,
        entries=entries,
        error=error,
    )


def _entry(raw: Mapping[str, Any]) -> ParsedEntry:
    summary = _text(_get(raw, "summary"))
    contents = [_text(_get(part, "value")) for part in _get(raw, "content") or ()]
    return ParsedEntry(
        guid=_text(_get(raw, "id")) or None,
        title=_plain_text(raw, "title"),
        link=_link(raw),
        summary=summary,
        # feedparser copies content into an empty summary; keep that text only once.
        content="\n".join(value for value in contents if value and value != summary),
        author=_text(_get(raw, "author")),
        categories=_categories(raw),
        published=_datetime(_get(raw, "published_parsed")),
        updated=_datetime(_get(raw, "updated_parsed")),
    )


def _get(mapping: Mapping[str, Any], key: str) -> Any:
    # dict.get skips FeedParserDict's aliases, whose updated -> published fallback warns.
    return dict.get(mapping, key) if isinstance(mapping, dict) else mapping.get(key)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _plain_text(raw: Mapping[str, Any], key: str) -> str:
    """A title as plain text: feedparser keeps markup when the feed said the title is HTML."""
    text = _text(_get(raw, key))
    detail = _get(raw, f"{key}_detail") or {}
    is_html = _get(detail, "type") in _HTML_TYPES
    text = _ANY_TAG.sub("", _BLOCK_TAG.sub(" ", text))
    if is_html:
        text = html.unescape(text)
    return " ".join(text.split())


def _link(raw: Mapping[str, Any]) -> str | None:
    link = _text(_get(raw, "link"))
    if link:
        return link
    for candidate in _get(raw, "links") or ():
        if _get(candidate, "rel") in (None, "alternate") and _text(_get(candidate, "href")):
            return _text(_get(candidate, "href"))
    return None


def _categories(raw: Mapping[str, Any]) -> tuple[str, ...]:
    terms = (_text(_get(tag, "term")) for tag in _get(raw, "tags") or ())
    return tuple(dict.fromkeys(term for term in terms if term))


def _datetime(value: object) -> datetime | None:
    """feedparser's *_parsed values are UTC struct_times."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime(*value[:6], tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def _bozo_message(parsed: Mapping[str, Any]) -> str | None:
    if not _get(parsed, "bozo"):
        return None
    exc = _get(parsed, "bozo_exception")
    if isinstance(exc, _HARMLESS):
        return None
    if isinstance(exc, SAXParseException):
        # "near": feedparser adds an XML declaration line when the body has none.
        return f"XML error near line {exc.getLineNumber()}: {exc.getMessage()}"
    return str(exc) if exc is not None else "malformed feed"
