"""`watcher rules test`: what the rules would catch in feed files, URLs or stored entries."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher import identity, parse
from watcher.fetch import Fetcher
from watcher.models import Entry, FetchRequest, FetchSettings
from watcher.render import html_to_text, one_line
from watcher.rules.matcher import RuleSet

# A URL typed by the operator on the command line is trusted like a local file, so it may
# point at a private network; feeds from the config keep their own settings.
COMMAND_LINE_FETCH = FetchSettings(allow_private_networks=True)
SNIPPET_CHARS = 200


class SourceError(Exception):
    """A source on the command line could not be read or parsed."""


@dataclass(frozen=True, slots=True)
class Source:
    name: str  # what the user typed
    feed: str  # the feed name entries carry: a configured feed's name, else the channel title
    tags: tuple[str, ...]
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Hit:
    rule: str
    entry: Entry
    terms: tuple[str, ...]
    source: str

    def as_json(self) -> dict[str, Any]:
        """The stable --json shape: scripts depend on these keys."""
        return {
            "rule": self.rule,
            "title": self.entry.title,
            "link": self.entry.link,
            "feed": self.entry.feed,
            "terms": list(self.terms),
            "published": self.entry.published.isoformat() if self.entry.published else None,
            "source": self.source,
        }


def read_source(
    source: str,
    fetcher: Fetcher,
    configured: Callable[[str], tuple[str, tuple[str, ...], FetchSettings] | None],
) -> Source:
    """Fetch or read one feed given on the command line. `configured(url)` returns the
    (name, tags, fetch settings) of a configured feed with that URL, if any."""
    url = _as_url(source)
    known = configured(url)
    settings = known[2] if known else COMMAND_LINE_FETCH
    result = fetcher.fetch(FetchRequest(url=url, settings=settings))
    if result.error is not None:
        raise SourceError(f"{source}: {result.error}")
    parsed = parse.parse_feed(result.body, result.headers)
    if parsed.error is not None and not parsed.entries:
        raise SourceError(f"{source}: {parsed.error}")
    feed = known[0] if known else (parsed.title or source)
    tags = known[1] if known else ()
    entries = tuple(identity.keyed(entry, feed) for entry in parsed.entries)
    return Source(source, feed, tags, entries)


def _as_url(source: str) -> str:
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
        return source
    path = Path(source.removeprefix("file:")).expanduser().resolve()
    if not path.is_file():
        raise SourceError(f"{source}: no such file (give a feed file or an http(s) URL)")
    return path.as_uri()


def hits(
    rules: RuleSet,
    entries: Iterable[Entry],
    tags: Callable[[Entry], Sequence[str]],
    source: str,
) -> Iterator[Hit]:
    """Every (rule, entry) match, in entry order."""
    for entry in entries:
        for match in rules.match(entry, tags(entry)):
            yield Hit(match.rule, entry, match.terms, source)


def format_hit(hit: Hit, highlight: Callable[[str], str]) -> str:
    """Human output: the rule and title, then where it came from and what matched."""
    title = _highlighted(one_line(hit.entry.title, 200), hit.terms, highlight)
    lines = [f"{hit.rule}: {title}", f"    {hit.entry.feed} · {hit.entry.link or '(no link)'}"]
    summary = _snippet(html_to_text(hit.entry.summary or hit.entry.content), hit.terms)
    if summary:
        lines.append("    " + _highlighted(summary, hit.terms, highlight))
    lines.append("    matched: " + ", ".join(highlight(term) for term in hit.terms))
    return "\n".join(lines)


def _snippet(text: str, terms: Sequence[str], width: int = SNIPPET_CHARS) -> str:
    """About `width` characters of `text` around the first matched term."""
    if len(text) <= width:
        return text
    pattern = _terms_pattern(terms)
    found = pattern.search(text) if pattern else None
    start = max(0, (found.start() if found else 0) - width // 3)
    if start:
        start = text.find(" ", start) + 1 or start
    end = min(len(text), start + width)
    if end < len(text):
        end = text.rfind(" ", start, end) if " " in text[start:end] else end
    return ("… " if start else "") + text[start:end].strip() + (" …" if end < len(text) else "")


def _terms_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    patterns = [_term_pattern(term) for term in sorted(terms, key=len, reverse=True)]
    patterns = [pattern for pattern in patterns if pattern]
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


def _highlighted(text: str, terms: Sequence[str], highlight: Callable[[str], str]) -> str:
    pattern = _terms_pattern(terms)
    if pattern is None:
        return text
    return pattern.sub(lambda found: highlight(found.group(0)), text)


def _term_pattern(term: str) -> str:
    words = [re.escape(word) for word in re.findall(r"\w+", term)]
    if not words:
        return ""
    return r"(?<!\w)" + r"[\W_]+".join(words) + r"(?!\w)"
