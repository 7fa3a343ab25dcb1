"""Entry text made safe for where it lands: a header, plain text, HTML or Markdown.

Every field of an entry comes from a stranger's feed. Titles lose control characters and
line breaks (they become email Subjects), HTML goes through nh3 with a short allowlist,
Markdown special characters are escaped, and chat mentions are defused with a zero-width
space so a story cannot ping a whole channel.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit, urlunsplit

import nh3
from markupsafe import Markup, escape

# HTML read for text or sanitizing: an excerpt needs far less, and it bounds the work.
HTML_INPUT_CHARS = 50_000
ALLOWED_TAGS = frozenset(
    {"a", "p", "br", "ul", "ol", "li", "b", "i", "em", "strong", "code", "pre", "blockquote"}
)
# Dropped with everything inside them, not just their tags.
_CONTENT_DROPPED = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "svg", "math", "title"}
)
_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_LINK_REL = "noopener noreferrer"

# C0/C1 controls, line/paragraph separators and bidi overrides (they can disguise a Subject).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
_SPACES = re.compile(r"\s+")
_BLOCK_TAGS = frozenset({"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"})
_SKIPPED_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript"})

ZERO_WIDTH_SPACE = "\u200b"
# Markdown characters escaped wherever they are, and "&" only where it starts an entity.
_TAG_LIKE = re.compile(r"<[^>]*>?")
_LINE_BREAKS = re.compile(r"\r\n?|[\v\f\x1c-\x1e\x85\u2028\u2029]")
_MD_INLINE = re.compile(r"([\\`*_\[\]()<>~]|&(?=#?[0-9A-Za-z]{1,32};))")
# Characters that only mean something at the start of a line (heading, list, quote).
_MD_LINE_START = re.compile(r"^([ \t]*)([#+=-])", re.MULTILINE)
_MD_ORDERED_DOT = re.compile(r"^([ \t]*\d{1,9})\.", re.MULTILINE)
# "@name" at the start of a word (not the "@" of an email address), and "<!channel>".
_ANY_MENTION = re.compile(r"(?<![\w.+-])@(?=\w)")
# Mass mentions are defused even inside a word, unless they are the domain of an address.
_MASS_MENTION = re.compile(
    r"@(?=(?:everyone|here|channel|all|room|online)\b)"
    r"(?!(?<=[\w.+-]@)(?:everyone|here|channel|all|room|online)\.\w)",
    re.IGNORECASE,
)
_SLACK_SPECIAL = re.compile(r"<(?=[!@#])")

_URL_PATH_SAFE = "/:@!$&*+,;=%~-._"
_URL_QUERY_SAFE = _URL_PATH_SAFE + "?"
_NETLOC = re.compile(r"^[\w.\-:\[\]@%~]+$")
_HTML_TAG = re.compile(r"""(<(?:[^>"']|"[^"]*"|'[^']*')*>)""")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self.skipping += 1
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS and self.skipping:
            self.skipping -= 1
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Readable text of an HTML fragment, on one line."""
    markup = markup[:HTML_INPUT_CHARS]
    if "<" not in markup and "&" not in markup:
        return _SPACES.sub(" ", markup).strip()
    extractor = _TextExtractor()
    try:
        extractor.feed(markup)
        extractor.close()
    except AssertionError:
        # Python 3.11's HTMLParser asserts on some broken declarations ("<![0"); fall back
        # to dropping anything tag-shaped.
        return _SPACES.sub(" ", html.unescape(_TAG_LIKE.sub(" ", markup))).strip()
    return _SPACES.sub(" ", html.unescape("".join(extractor.parts))).strip()


def one_line(text: str, limit: int) -> str:
    """Text safe for a header or a title: no control characters, at most `limit` chars."""
    flat = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def shorten(text: str, limit: int) -> str:
    """`text` cut at a word boundary to about `limit` characters, marked with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + " …"


def sanitize_html(markup: str, limit: int = HTML_INPUT_CHARS) -> str:
    """Entry HTML reduced to the allowlist: no images, styles, forms, scripts or handlers.

    Cutting the input may split a tag; the parser drops a tag left open at the end.
    """
    return _clean(markup[:limit], ALLOWED_TAGS)


def _clean(markup: str, tags: frozenset[str]) -> str:
    return nh3.clean(
        markup,
        tags=set(tags),
        clean_content_tags=set(_CONTENT_DROPPED),
        attributes={"a": {"href"}},
        url_schemes=set(_LINK_SCHEMES),
        url_relative="deny",  # a relative link means nothing in a mail reader
        link_rel=_LINK_REL,
        strip_comments=True,
    )


def terms_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    """A case-insensitive pattern finding any of `terms` as whole words in plain text."""
    patterns = []
    for term in sorted(terms, key=len, reverse=True):
        words = [re.escape(word) for word in re.findall(r"\w+", term)]
        if words:
            tail = r"\w*" if term.rstrip().endswith("*") else r"(?!\w)"
            patterns.append(r"(?<!\w)" + r"[\W_]+".join(words) + tail)
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def highlight_text(text: str, terms: Sequence[str]) -> Markup:
    """Plain text as HTML, each matched term wrapped in <mark>."""
    pattern = terms_pattern(terms)
    if pattern is None:
        return escape(text)
    out: list[str] = []
    last = 0
    for found in pattern.finditer(text):
        out.append(str(escape(text[last : found.start()])))
        out.append(f"<mark>{escape(found.group(0))}</mark>")
        last = found.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def highlight_html(clean_html: str, terms: Sequence[str]) -> Markup:
    """Sanitized HTML with matched terms marked in its text, never inside its tags."""
    if terms_pattern(terms) is None:
        return Markup(clean_html)
    pieces = _HTML_TAG.split(clean_html)
    marked = [
        piece if index % 2 else str(highlight_text(html.unescape(piece), terms))
        for index, piece in enumerate(pieces)
    ]
    # Cleaned again so a mistake above can never let anything but the allowlist through.
    return Markup(_clean("".join(marked), ALLOWED_TAGS | {"mark"}))


def escape_markdown(text: str) -> str:
    """Plain text that renders literally in CommonMark and chat dialects, mentions defused."""
    # Markdown parsers start a new line at a bare CR too; make every break a plain "\n"
    # so the line-start escapes below see it.
    text = _LINE_BREAKS.sub("\n", text)
    escaped = _MD_INLINE.sub(r"\\\1", text)
    escaped = _MD_ORDERED_DOT.sub(r"\1\\.", escaped)
    escaped = _MD_LINE_START.sub(r"\1\\\2", escaped)
    return defuse_mentions(escaped, everyone_only=False)


def defuse_mentions(text: str, *, everyone_only: bool) -> str:
    """A zero-width space after "@" (and "<" of Slack's <!channel>) so nobody is pinged.

    `everyone_only` limits this to mass mentions (@everyone, @here, @channel, @all, @room).
    """
    pattern = _MASS_MENTION if everyone_only else _ANY_MENTION
    text = pattern.sub("@" + ZERO_WIDTH_SPACE, text)
    return _SLACK_SPECIAL.sub("<" + ZERO_WIDTH_SPACE, text)


def safe_link(url: str | None) -> str | None:
    """An http(s) URL with nothing that could break out of Markdown or HTML, else None.

    Spaces, quotes, angle brackets, parentheses and non-ASCII are percent-encoded, so the
    result fits in `<url>`, `[label](url)` and `href="url"` alike.
    """
    if not url:
        return None
    url = url.strip()
    if _CONTROL.search(url) or any(char.isspace() for char in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in {"http", "https"} or not _NETLOC.match(parts.netloc):
        return None
    return urlunsplit(
        (
            parts.scheme.lower(),
            parts.netloc,
            quote(parts.path, safe=_URL_PATH_SAFE),
            quote(parts.query, safe=_URL_QUERY_SAFE),
            quote(parts.fragment, safe=_URL_QUERY_SAFE),
        )
    )
