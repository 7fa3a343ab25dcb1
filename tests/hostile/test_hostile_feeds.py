"""Hostile feeds: entity bombs, external entities, oversized and broken XML, fuzzed bytes.

Each case must end in a clear result (entries salvaged, or a clear error) quickly, and
never raise out of the parser.
"""

from __future__ import annotations

import pyexpat

from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.parse import MAX_ENTRIES, MAX_TITLE_CHARS, parse_feed

CHANNEL_END = b"</channel></rss>"


def rss_with(prolog: bytes, items: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="utf-8"?>'
        + prolog
        + b'<rss version="2.0"><channel><title>t</title><link>https://example.org/</link>'
        + items
        + CHANNEL_END
    )


def item(number: int, title: bytes = b"") -> bytes:
    return (
        b"<item><title>" + (title or b"story %d" % number) + b"</title>"
        b"<link>https://example.org/%d</link><guid>g%d</guid></item>" % (number, number)
    )


def test_the_expat_version_is_reported() -> None:
    assert pyexpat.EXPAT_VERSION.startswith("expat_")  # logged by ops; see SECURITY.md


def test_billion_laughs_is_refused_before_parsing() -> None:
    bomb = b"".join(
        b'<!ENTITY lol%d "' % n + b"&lol%d;" % (n - 1) * 10 + b'">' for n in range(1, 10)
    )
    prolog = b'<!DOCTYPE rss [<!ENTITY lol0 "lol">' + bomb + b"]>"
    parsed = parse_feed(rss_with(prolog, item(1, b"&lol9;")))
    assert parsed.entries == ()
    assert parsed.error is not None
    assert "entities" in parsed.error


def test_external_entities_are_never_fetched_or_expanded() -> None:
    prolog = b'<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    parsed = parse_feed(rss_with(prolog, item(1, b"&xxe;")))
    assert parsed.entries == ()
    assert "root:" not in repr(parsed)


def test_an_entity_declaration_hidden_after_64_kib_of_comments_is_refused() -> None:
    padding = b"<!-- " + b"x" * 70_000 + b" -->"
    prolog = padding + b'<!DOCTYPE rss [<!ENTITY big "' + b"A" * 1000 + b'">]>'
    parsed = parse_feed(rss_with(prolog, item(1, b"&big;&big;&big;")))
    assert parsed.entries == ()
    assert "entities" in (parsed.error or "")


def test_a_plain_doctype_is_still_fine() -> None:
    prolog = (
        b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
        b'"http://my.netscape.com/publish/formats/rss-0.91.dtd">'
    )
    parsed = parse_feed(rss_with(prolog, item(1)))
    assert [entry.title for entry in parsed.entries] == ["story 1"]


def test_ten_thousand_entries_are_cut_to_the_limit() -> None:
    body = rss_with(b"", b"".join(item(n) for n in range(10_000)))
    parsed = parse_feed(body)
    assert len(parsed.entries) == MAX_ENTRIES
    assert parsed.entries[0].title == "story 0"  # the first listed (the newest) are kept


def test_a_one_megabyte_title_is_cut() -> None:
    parsed = parse_feed(rss_with(b"", item(1, b"x" * 1_000_000)))
    (entry,) = parsed.entries
    assert len(entry.title) == MAX_TITLE_CHARS


def test_truncated_xml_salvages_what_it_can() -> None:
    body = rss_with(b"", item(1) + item(2))[: -len(CHANNEL_END) - 20]
    parsed = parse_feed(body)
    assert [entry.title for entry in parsed.entries][:1] == ["story 1"]
    assert parsed.error is not None


def test_garbage_is_a_clear_error() -> None:
    parsed = parse_feed(b"\x00\xff\xfe<<<>>>\x89PNG")
    assert parsed.entries == ()
    assert parsed.error is not None
    assert parsed.error.startswith("not a feed")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_feed_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    parsed = parse_feed(body)
    assert parsed.error is not None or parsed.entries is not None


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"<item>",
                b"</item>",
                b"<title>",
                b"</title>",
                b"&amp;",
                b"&",
                b"<![CDATA[",
                b"]]>",
                b"<",
                b"x",
                b"\xc3",
                b"<guid>",
            ]
        ),
        max_size=60,
    )
)
def test_parse_feed_never_raises_on_broken_feed_shapes(pieces: list[bytes]) -> None:
    parse_feed(rss_with(b"", b"".join(pieces)))
