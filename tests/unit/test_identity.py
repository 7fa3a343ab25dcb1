"""identity: canonical URLs, dedup keys, content hashes, alert keys."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.provisional import urls

from watcher.identity import (
    TRACKING_PARAMS,
    alert_key,
    canonical_url,
    content_hash,
    dedup_key,
    keyed,
    link_key,
)
from watcher.models import Entry, ParsedEntry


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("https://example.org/a", "https://example.org/a"),
        ("HTTPS://Example.ORG/Path/Keeps/Case", "https://example.org/Path/Keeps/Case"),
        ("http://example.org:80/a", "http://example.org/a"),
        ("https://example.org:443/a", "https://example.org/a"),
        ("http://example.org:443/a", "http://example.org:443/a"),
        ("https://example.org:8443/a", "https://example.org:8443/a"),
        ("https://example.org", "https://example.org/"),
        ("https://example.org?", "https://example.org/"),
        ("https://example.org/a?", "https://example.org/a"),
        ("https://example.org/a#section", "https://example.org/a"),
        ("https://example.org/a?#", "https://example.org/a"),
        ("https://example.org/a?utm_source=rss&utm_medium=feed", "https://example.org/a"),
        ("https://example.org/a?UTM_Campaign=x&id=7", "https://example.org/a?id=7"),
        ("https://example.org/a?b=2&fbclid=xyz&a=1&gclid=1", "https://example.org/a?b=2&a=1"),
        ("https://example.org/a?id=1&&spm=a.b&ref_src=twsrc", "https://example.org/a?id=1"),
        ("https://example.org/a?q=a+b&x=%20y", "https://example.org/a?q=a+b&x=%20y"),
        ("https://example.org/a?utm=keep", "https://example.org/a?utm=keep"),
        ("  https://example.org/a  ", "https://example.org/a"),
        ("https://example.org/a b?q=c d", "https://example.org/a%20b?q=c%20d"),
        (
            "https://example.org/a\u00a0b\u2003?q=\x1cd",
            "https://example.org/a%C2%A0b%E2%80%83?q=%1Cd",
        ),
        ("https://user@Example.org/", "https://user@example.org/"),
        ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
        ("http://[::1]:8080", "http://[::1]:8080/"),
        # Not parseable, or not a URL with a host: returned as given, stripped.
        ("", ""),
        ("  not a url ", "not a url"),
        ("/relative/path?utm_source=x", "/relative/path?utm_source=x"),
        ("mailto:desk@example.org", "mailto:desk@example.org"),
        ("urn:uuid:1234", "urn:uuid:1234"),
        ("http://example.org:99999/", "http://example.org:99999/"),
        ("http://example.org:port/", "http://example.org:port/"),
        ("http://[::1/", "http://[::1/"),
    ],
)
def test_canonical_url(url: str, canonical: str) -> None:
    assert canonical_url(url) == canonical


def test_tracking_params_named() -> None:
    assert {"fbclid", "gclid", "msclkid", "mc_eid", "_hsenc", "spm"} <= TRACKING_PARAMS


@given(st.text())
@example("http://[::1]:80")
@example("http://a@b@c:0080/?#")
@example("HTTP://\tExample.org/")
@example("http://http:// ?")
def test_canonical_url_never_raises_and_is_idempotent(text: str) -> None:
    once = canonical_url(text)
    assert canonical_url(once) == once


@given(urls())
def test_canonical_url_is_idempotent_on_real_urls(url: str) -> None:
    once = canonical_url(url)
    assert canonical_url(once) == once
    assert "#" not in once


def entry(**fields: object) -> ParsedEntry:
    values: dict[str, object] = {"guid": None, "title": "Title", "link": None}
    values.update(fields)
    return ParsedEntry(**values)  # type: ignore[arg-type]


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_dedup_key_by_guid_is_scoped_to_the_feed() -> None:
    item = entry(guid="42", link="https://example.org/a")

    key = dedup_key("Wire", item)

    assert key == "guid:" + sha256("Wire\x0042")[:32]
    assert dedup_key("Other wire", item) != key
    assert dedup_key("Wire", entry(guid="42", title="changed")) == key


def test_dedup_key_by_link_is_the_canonical_link() -> None:
    a = entry(link="https://Example.org/a?utm_source=x#top")
    b = entry(link="https://example.org/a", title="A different title")

    assert dedup_key("Wire", a) == dedup_key("Elsewhere", b) == "link:https://example.org/a"


def test_dedup_key_by_content_when_nothing_else() -> None:
    item = entry(summary="text")

    assert dedup_key("Wire", item) == "hash:" + content_hash(item)
    assert dedup_key("Wire", entry(guid="", summary="text")).startswith("hash:")


def test_content_hash_ignores_whitespace_differences_only() -> None:
    base = entry(title="A  title", link="https://x.example/", summary=" s ", content="c\n d")
    same = entry(title="A title ", link="https://x.example/", summary="s", content="c d")

    assert content_hash(base) == content_hash(same)
    assert len(content_hash(base)) == 64
    assert content_hash(entry(title="A title", summary="x")) != content_hash(
        entry(title="A title x", summary="")
    )
    assert content_hash(base) != content_hash(entry(title="A title", summary="s", content="c d"))


def test_keyed() -> None:
    published = datetime(2025, 8, 7, 8, tzinfo=UTC)
    item = ParsedEntry(
        guid="g1",
        title="T",
        link="https://Example.org/story?fbclid=1",
        summary="S",
        content="C",
        author="A",
        categories=("x", "y"),
        published=published,
        updated=None,
    )

    assert keyed(item, "Wire") == Entry(
        feed="Wire",
        key=dedup_key("Wire", item),
        link_key="https://example.org/story",
        content_hash=content_hash(item),
        title="T",
        link="https://Example.org/story?fbclid=1",
        summary="S",
        content="C",
        author="A",
        categories=("x", "y"),
        published=published,
        updated=None,
    )
    assert keyed(entry(), "Wire").link_key is None


def test_alert_key() -> None:
    key = alert_key("sanctions", "guid:abc", "team")

    assert key == sha256("sanctions\0guid:abc\0team")
    assert alert_key("sanctions", "guid:abc", "console") != key


def test_very_long_links_get_a_short_stable_key() -> None:
    long_link = "https://example.org/" + "a" * 5000
    short = link_key("https://example.org/story?utm_source=x")
    assert short == "https://example.org/story"
    key = link_key(long_link)
    assert key.startswith("sha256:")
    assert len(key) < 100
    assert key == link_key(long_link + "#fragment")  # still canonical before hashing
    entry = ParsedEntry(guid=None, title="t", link=long_link)
    assert keyed(entry, "feed").key == "link:" + key
