"""Who an entry is: canonical URLs, dedup keys, content hashes and alert keys. Pure."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

from watcher.models import Entry, ParsedEntry

_WHITESPACE = re.compile(r"\s")

# Query parameters that only say how a reader arrived; utm_* is matched by prefix.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "yclid",
        "_hsenc",
        "_hsmi",
        "ref_src",
        "spm",
    }
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


MAX_KEY_CHARS = 1000


def canonical_url(url: str) -> str:
    """The URL two links to the same page share; the input, stripped, if it cannot be parsed.

    Lower-case scheme and host, no default port, no fragment, no tracking parameters (the
    others keep their order and spelling), "/" for an empty path.
    """
    text = url.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return text
    if not parts.scheme or not parts.netloc or host is None:
        return text
    scheme = parts.scheme.lower()
    userinfo, _, _ = parts.netloc.rpartition("@")
    netloc = f"[{host}]" if ":" in host else host
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    query = "&".join(
        pair for pair in parts.query.split("&") if pair and not _is_tracking(pair.split("=")[0])
    )
    return urlunsplit(
        (scheme, netloc, _escape_spaces(parts.path) or "/", _escape_spaces(query), "")
    )


def _escape_spaces(text: str) -> str:
    # Raw whitespace at the end would be stripped on the next call: encode it instead.
    # (For str patterns re's \s is exactly str.isspace; a scan is ~10x cheaper than a
    # generator over every character.)
    return _WHITESPACE.sub(_quoted, text)


def _quoted(match: re.Match[str]) -> str:
    return quote(match.group())


def _is_tracking(name: str) -> bool:
    key = unquote_plus(name).lower()
    return key.startswith("utm_") or key in TRACKING_PARAMS


def content_hash(entry: ParsedEntry) -> str:
    """sha256 over title, link, summary and content, each with its whitespace collapsed."""
    fields = (entry.title, entry.link or "", entry.summary, entry.content)
    return _sha256("\0".join(" ".join(value.split()) for value in fields))


def dedup_key(feed_name: str, entry: ParsedEntry) -> str:
    """guid within the feed (guids are only unique per feed), else link, else content."""
    if entry.guid:
        return "guid:" + _sha256(f"{feed_name}\0{entry.guid}")[:32]
    if entry.link:
        return "link:" + link_key(entry.link)
    return "hash:" + content_hash(entry)


def link_key(link: str) -> str:
    """The canonical link, or a digest of it when it is too long to index (PostgreSQL
    refuses index entries over about 2.7 kB)."""
    canonical = canonical_url(link)
    if len(canonical) <= MAX_KEY_CHARS:
        return canonical
    return "sha256:" + _sha256(canonical)


def keyed(entry: ParsedEntry, feed_name: str) -> Entry:
    return Entry(
        feed=feed_name,
        key=dedup_key(feed_name, entry),
        link_key=link_key(entry.link) if entry.link else None,
        content_hash=content_hash(entry),
        title=entry.title,
        link=entry.link,
        summary=entry.summary,
        content=entry.content,
        author=entry.author,
        categories=entry.categories,
        published=entry.published,
        updated=entry.updated,
    )


def alert_key(rule: str, entry_key: str, target: str) -> str:
    """The idempotency key of one alert: one rule, one entry, one target."""
    return _sha256(f"{rule}\0{entry_key}\0{target}")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
