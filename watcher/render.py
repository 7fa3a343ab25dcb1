"""Turn an alert into a message: a one-line title and a plain-text body.

Entry text comes from strangers: HTML is reduced to text, control characters and line
breaks are removed from the title (it becomes an email Subject), and nothing from the
entry is ever interpreted as a template.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from html.parser import HTMLParser

from watcher.models import Alert, Entry
from watcher.notify import Message

EXCERPT_CHARS = 300
TITLE_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_SPACES = re.compile(r"\s+")
_BLOCK_TAGS = frozenset({"p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"})
_SKIPPED_TAGS = frozenset({"script", "style", "head", "title"})


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
    if "<" not in markup and "&" not in markup:
        return _SPACES.sub(" ", markup).strip()
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    return _SPACES.sub(" ", html.unescape("".join(extractor.parts))).strip()


def one_line(text: str, limit: int) -> str:
    """Text safe for a header or a title: no control characters, at most `limit` chars."""
    flat = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def excerpt(entry: Entry, limit: int = EXCERPT_CHARS) -> str:
    text = html_to_text(entry.summary or entry.content)
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


def render_alert(alert: Alert) -> Message:
    """The message for one alert."""
    return render(alert.entry, rules=[alert.rule], terms=alert.terms)


def render(entry: Entry, rules: Sequence[str], terms: Sequence[str]) -> Message:
    title = one_line(html_to_text(entry.title) or entry.link or "(untitled entry)", TITLE_CHARS)
    lines: list[str] = []
    summary = excerpt(entry)
    if summary:
        lines += [summary, ""]
    source = one_line(entry.feed, 120)
    if entry.published is not None:
        source += " · " + entry.published.strftime("%Y-%m-%d %H:%M UTC")
    lines.append(f"Source:  {source}")
    lines.append(f"Rule:    {', '.join(rules)}")
    if terms:
        lines.append(f"Matched: {', '.join(terms)}")
    if entry.link:
        lines.append(f"Link:    {one_line(entry.link, 2000)}")
    return Message(
        title=one_line(f"[{', '.join(rules)}] {title}", TITLE_CHARS), body="\n".join(lines)
    )
