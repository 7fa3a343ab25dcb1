"""Turn a fetched body into a ParsedFeed: feedparser's output, cleaned into plain values.

The only module that imports feedparser. It is handed bytes, never a URL or a str:
feedparser fetches URLs and opens paths itself, around every guard in fetch.py.

The character encoding is decided here, not by feedparser, which follows RFC 3023 and
trusts the HTTP charset over the document (a UTF-8 feed served as ISO-8859-1 comes out as
mojibake) and reads an undeclared body as ISO-8859-1 when headers lack a Content-Type.
The order here: a byte order mark; UTF-16/32 recognisable from "<?"; valid UTF-8 (legacy
text is almost never valid UTF-8 by accident); the XML declaration; the HTTP charset;
windows-1252. Labels for ISO-8859-1 and US-ASCII mean windows-1252, as in browsers.
feedparser then gets UTF-8 that says so.

feedparser's HTML sanitizer and its resolution of relative URIs inside HTML are off: they
took 42% of a parse, and watcher sanitizes entry HTML where it is shown (render.py, nh3),
which also drops relative links. What the sanitizer did that matters before then is done
here: the text inside <script>, <style> and <applet> is dropped, so it never reaches the
store, the matcher or an alert.

feedparser's strict parser gets its SAX parser from xml.sax.make_parser, trying the
modules named in feedparser.api.PREFERRED_XML_PARSERS first: this module is put first, and
its create_parser() gives the standard expat reader with expat's ``buffer_text`` on. expat
then hands over a run of character data in one call instead of one call per line and per
entity or character reference (escaped HTML is full of them); feedparser joins the pieces
anyway, so the result is the same, for about 5% less CPU per parse.
"""

from __future__ import annotations

import codecs
import html
import io
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax import SAXParseException
from xml.sax.expatreader import ExpatParser

import feedparser
import feedparser.api

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
# Elements whose text is not text (feedparser's sanitizer dropped them with their content).
_HIDDEN_START = re.compile(r"<\s*(script|style|applet)\b", re.IGNORECASE)
_HIDDEN_END = {
    name: re.compile(rf"<\s*/\s*{name}\s*>", re.IGNORECASE)
    for name in ("script", "style", "applet")
}

_BOMS = (
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
)
# "<?" in UTF-32/16 without a byte order mark (XML 1.0, appendix F).
_WIDE_STARTS = (
    (b"\0\0\0<\0\0\0?", "utf-32-be"),
    (b"<\0\0\0?\0\0\0", "utf-32-le"),
    (b"\0<\0?", "utf-16-be"),
    (b"<\0?\0", "utf-16-le"),
)
_XML_DECLARATION = re.compile(rb"\s*<\?xml\s[^>]*?\bencoding\s*=\s*[\"']([A-Za-z][\w.:-]*)[\"']")
_TEXT_DECLARATION = re.compile(r"^\s*<\?xml\s[^>]*\?>")
_CHARSET = re.compile(r";\s*charset\s*=\s*[\"']?([^\s;\"']+)", re.IGNORECASE)
# Codecs that are not a document's character encoding (or are unsafe to honour).
_NOT_CHARSETS = frozenset(
    {"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined", "utf-7"}
)
_UNICODE = ("utf-8", "utf-16", "utf-32")

_SY_PERIODS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
    "monthly": timedelta(days=30),
    "yearly": timedelta(days=365),
}
_MAX_TTL = timedelta(days=365)
# Limits per poll: entries beyond MAX_ENTRIES (feeds list the newest first) and text beyond
# these lengths are dropped.
MAX_ENTRIES = 1000
MAX_TITLE_CHARS = 2000
MAX_LINK_CHARS = 4000
MAX_KEY_CHARS = 2000
MAX_TEXT_CHARS = 200_000
# The first element that is not a declaration, comment or processing instruction.
_ROOT_ELEMENT = re.compile(rb"<[A-Za-z_]")


class _BufferedExpatParser(ExpatParser):
    """xml.sax's expat reader, with consecutive character data reported in one call."""

    def reset(self) -> None:
        super().reset()
        expat: Any = vars(self)["_parser"]  # the pyexpat parser (not in typeshed's stub)
        expat.buffer_text = True


def create_parser() -> ExpatParser:
    """The SAX driver entry point xml.sax.make_parser calls (see the module docstring)."""
    return _BufferedExpatParser()


if __name__ not in feedparser.api.PREFERRED_XML_PARSERS:
    feedparser.api.PREFERRED_XML_PARSERS.insert(0, __name__)


def parse_feed(body: bytes, headers: Mapping[str, str] | None = None) -> ParsedFeed:
    """Parse RSS 0.9x/1.0/2.0 or Atom; never raises for a bad feed, says so in ``error``."""
    if not body.strip():
        return ParsedFeed.failed("not a feed: the body is empty")
    response_headers = {name.lower(): value for name, value in (headers or {}).items()}
    content_type = response_headers.get("content-type", "")
    body = _utf8(body, content_type)
    if _declares_entities(body):
        return ParsedFeed(
            title="",
            link=None,
            entries=(),
            error="refused: the feed declares XML entities (<!ENTITY>), which watcher never "
            "expands (entity-expansion bombs, external entities)",
        )
    media_type = content_type.split(";", 1)[0].strip() or "application/xml"
    response_headers["content-type"] = f"{media_type}; charset=utf-8"
    parsed = feedparser.parse(
        io.BytesIO(body),
        response_headers=response_headers,
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    channel = _get(parsed, "feed") or {}
    raw_entries = _get(parsed, "entries") or ()
    entries = tuple(_entry(raw) for raw in raw_entries[:MAX_ENTRIES])
    error = _bozo_message(parsed)
    if not _get(parsed, "version") and not entries:
        error = f"not a feed: {error}" if error else "not a feed: no RSS or Atom content found"
    return ParsedFeed(
        title=_plain_text(channel, "title"),
        link=_text(_get(channel, "link")) or None,
        entries=entries,
        error=error,
        ttl=_ttl(channel),
    )


def _declares_entities(body: bytes) -> bool:
    """Whether the prolog (everything before the root element) declares an entity.

    feedparser strips most entity declarations itself, but only within its first 64 KiB
    and not a plain entity referenced many times; a feed never needs one, so refuse it."""
    root = _ROOT_ELEMENT.search(body)
    prolog = body[: root.start()] if root else body
    return b"<!ENTITY" in prolog.upper()


def _utf8(body: bytes, content_type: str) -> bytes:
    """The body in UTF-8, its XML declaration (if any) saying so."""
    text = _decode(body, content_type).removeprefix("\ufeff")
    text = _TEXT_DECLARATION.sub('<?xml version="1.0" encoding="utf-8"?>', text, count=1)
    return text.encode("utf-8")


def _decode(body: bytes, content_type: str) -> str:
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace")
    for start, encoding in _WIDE_STARTS:
        if body.startswith(start):
            return body.decode(encoding, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for label in _labels(body, content_type):
        legacy = _legacy_encoding(label)
        if legacy is None:
            continue
        try:
            return body.decode(legacy)
        except (UnicodeDecodeError, LookupError):  # LookupError: not a text encoding
            continue
    try:
        return body.decode("cp1252")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def _labels(body: bytes, content_type: str) -> list[str]:
    """The XML declaration's encoding, then the HTTP charset."""
    declared = _XML_DECLARATION.match(body[:1024])
    charset = _CHARSET.search(content_type)
    labels = [declared.group(1).decode("ascii")] if declared else []
    return labels + ([charset.group(1)] if charset else [])


def _legacy_encoding(label: str) -> str | None:
    """The codec for a charset label other than Unicode's (tried already), or None."""
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    if name in _NOT_CHARSETS or name.startswith(_UNICODE):
        return None
    if name in ("iso8859-1", "ascii"):
        return "cp1252"
    return "gb18030" if name == "gb2312" else name


def _ttl(channel: Mapping[str, Any]) -> timedelta | None:
    """The longer of RSS <ttl> (minutes) and sy:updatePeriod / sy:updateFrequency."""
    bounds = []
    minutes = _count(_get(channel, "ttl"))
    if minutes is not None:
        bounds.append(min(timedelta(minutes=min(minutes, 10**8)), _MAX_TTL))
    period = _SY_PERIODS.get(_text(_get(channel, "sy_updateperiod")).lower())
    if period is not None:
        bounds.append(period / (_count(_get(channel, "sy_updatefrequency")) or 1))
    return max(bounds, default=None)


def _count(value: object) -> int | None:
    """A positive whole number (past 12 digits, just a very large one), or None."""
    text = _text(value)
    if not text.isascii() or not text.isdigit():
        return None
    digits = text.lstrip("0")
    return int(digits[:12]) if digits else None


def _entry(raw: Mapping[str, Any]) -> ParsedEntry:
    """One entry, cut to sane sizes, so one hostile entry cannot bloat the store or an alert."""
    summary = _html_text(_get(raw, "summary"), _get(raw, "summary_detail"))
    contents = [_html_text(_get(part, "value"), part) for part in _get(raw, "content") or ()]
    guid = _text(_get(raw, "id"))
    link = _link(raw)
    return ParsedEntry(
        guid=guid[:MAX_KEY_CHARS] or None,
        title=_plain_text(raw, "title")[:MAX_TITLE_CHARS],
        link=link[:MAX_LINK_CHARS] if link else link,
        summary=summary[:MAX_TEXT_CHARS],
        # feedparser copies content into an empty summary; keep that text only once.
        content="\n".join(value for value in contents if value and value != summary)[
            :MAX_TEXT_CHARS
        ],
        author=_text(_get(raw, "author"))[:MAX_TITLE_CHARS],
        categories=tuple(category[:MAX_TITLE_CHARS] for category in _categories(raw)[:50]),
        published=_datetime(_get(raw, "published_parsed")),
        updated=_datetime(_get(raw, "updated_parsed")),
    )


def _get(mapping: Mapping[str, Any], key: str) -> Any:
    # dict.get skips FeedParserDict's aliases, whose updated -> published fallback warns.
    return dict.get(mapping, key) if isinstance(mapping, dict) else mapping.get(key)


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _html_text(value: object, detail: object) -> str:
    """A summary or content: when it is HTML, without its hidden elements."""
    text = _text(value)
    is_html = isinstance(detail, Mapping) and _get(detail, "type") in _HTML_TYPES
    return _visible(text).strip() if is_html else text


def _visible(markup: str) -> str:
    """HTML without <script>, <style> and <applet> elements (content included); an element
    left open runs to the end. Linear: each search starts where the last one ended."""
    if "<" not in markup:
        return markup
    kept: list[str] = []
    position = 0
    while (start := _HIDDEN_START.search(markup, position)) is not None:
        kept.append(markup[position : start.start()])
        end = _HIDDEN_END[start.group(1).lower()].search(markup, start.end())
        if end is None:
            return "".join(kept)
        kept.append(" ")
        position = end.end()
    if not kept:
        return markup
    kept.append(markup[position:])
    return "".join(kept)


def _plain_text(raw: Mapping[str, Any], key: str) -> str:
    """A title as plain text: feedparser keeps markup when the feed said the title is HTML."""
    text = _text(_get(raw, key))
    detail = _get(raw, f"{key}_detail") or {}
    is_html = _get(detail, "type") in _HTML_TYPES
    if is_html:
        text = _visible(text)
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
