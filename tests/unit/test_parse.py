"""parse_feed on the feeds in tests/data and on bodies that are not feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.models import ParsedEntry
from watcher.parse import parse_feed

DATA = Path(__file__).resolve().parent.parent / "data"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_rss2() -> None:
    feed = parse_feed(data("rss2.xml"))

    assert (feed.title, feed.link, feed.error) == (
        "World Wire",
        "https://wire.example/world/",
        None,
    )
    first, second, third = feed.entries
    assert first == ParsedEntry(
        guid="wire-1001",
        title="EU agrees new sanctions package",
        link="https://wire.example/world/eu-sanctions?utm_source=rss",
        summary="<p>Ministers agreed a <b>new</b> package.</p>",
        content="",
        author="desk@wire.example (World Desk)",
        categories=("Europe", "Sanctions"),
        published=datetime(2025, 8, 7, 8, 0, tzinfo=UTC),
        updated=None,  # RSS has only pubDate
    )
    assert second.guid is None
    assert second.title == "Talks resume in Geneva"
    assert second.author == "Jane Reporter"
    assert second.published == datetime(2025, 8, 7, 8, 30, tzinfo=UTC)  # +0200 -> UTC
    assert (third.guid, third.link, third.published, third.updated) == (None, None, None, None)
    assert third.categories == ()


def test_atom() -> None:
    feed = parse_feed(data("atom.xml"))

    assert (feed.title, feed.link, feed.error) == (
        "Science & Space",
        "https://science.example/",
        None,
    )
    probe, only_content = feed.entries
    assert probe == ParsedEntry(
        guid="tag:science.example,2025:probe",
        title="Probe reaches Jupiter & its moons",
        link="https://science.example/probe",
        summary="The probe arrived.",
        content="<p>The probe arrived after <b>six</b> years.</p>",
        author="Ada Astronomer",
        categories=("space", "probes"),
        published=datetime(2025, 8, 6, 10, 0, tzinfo=UTC),
        updated=datetime(2025, 8, 7, 9, 0, tzinfo=UTC),
    )
    assert only_content.summary == "<p>Full text.</p>"
    assert only_content.content == ""  # the same text is not kept twice
    assert only_content.published is None
    assert only_content.updated == datetime(2025, 8, 7, 8, 0, tzinfo=UTC)


def test_rss1_rdf() -> None:
    feed = parse_feed(data("rss1.rdf"))

    assert (feed.title, feed.link, feed.error) == ("Old School News", "https://old.example/", None)
    [entry] = feed.entries
    assert entry.guid == "https://old.example/story/1"
    assert entry.title == "Parliament votes on budget"
    assert entry.link == "https://old.example/story/1"
    assert entry.summary == "The vote is today."
    assert entry.author == "Night Editor"
    assert entry.categories == ("Politics",)
    assert entry.updated == datetime(2025, 8, 7, 7, 15, tzinfo=UTC)


def test_content_encoded() -> None:
    full, content_only = parse_feed(data("content-encoded.xml")).entries

    assert full.summary == "A short teaser."
    assert full.content == (
        "<p>The <strong>whole</strong> article, paragraph one.</p><p>Paragraph two.</p>"
    )
    assert full.guid == "https://long.example/full"
    assert (content_only.summary, content_only.content) == ("<p>Nothing but content.</p>", "")


def test_bozo_feed_keeps_its_entries_and_says_what_is_wrong() -> None:
    feed = parse_feed(data("bozo-ampersand.xml"))

    assert feed.error is not None
    assert feed.error.startswith("XML error near line 4: not well-formed")
    [entry] = feed.entries
    assert (entry.guid, entry.title) == ("money-1", "Stocks & bonds rally")
    assert entry.link == "https://money.example/rally?a=1&b=2"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"Content-Type": "application/xml"},
        {"content-type": "text/xml"},  # us-ascii by RFC 3023; feedparser recovers
        {"content-type": "application/rss+xml; charset=utf-8"},  # a wrong charset
    ],
)
def test_windows_1251_feed(headers: dict[str, str] | None) -> None:
    feed = parse_feed(data("windows-1251.xml"), headers)

    assert feed.error is None
    assert feed.title == "Новости мира"
    [entry] = feed.entries
    assert entry.title == "Путин и Трамп обсудили санкции"
    assert entry.summary == "Переговоры прошли в Женеве."
    assert entry.categories == ("Политика",)


def test_headers_reach_feedparser() -> None:
    body = '<?xml version="1.0"?><rss version="2.0"><channel><title>Café</title></channel></rss>'

    latin = parse_feed(body.encode("latin-1"), {"Content-Type": "text/xml; charset=iso-8859-1"})

    assert latin.title == "Café"


def test_an_empty_channel_is_a_feed_without_entries() -> None:
    feed = parse_feed(b'<rss version="2.0"><channel><title>Quiet</title></channel></rss>')

    assert (feed.title, feed.entries, feed.error) == ("Quiet", (), None)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "not a feed: the body is empty"),
        (b"  \n ", "not a feed: the body is empty"),
        (b"garbage", "not a feed: XML error near line "),
        (b'{"json": true}', "not a feed: XML error near line "),
        ("not-a-feed.html", "not a feed: no RSS or Atom content found"),
    ],
)
def test_not_a_feed(body: bytes | str, error: str) -> None:
    feed = parse_feed(data(body) if isinstance(body, str) else body)

    assert feed.entries == ()
    assert feed.error is not None
    assert feed.error.startswith(error)


def test_a_truncated_feed_is_an_error() -> None:
    feed = parse_feed(b'<rss version="2.0"><channel><title>Cut</title><item><title>a')

    assert feed.error is not None
    assert feed.error.startswith("XML error near line ")


def test_whitespace_is_trimmed_and_empty_values_are_absent() -> None:
    body = b"""<rss version="2.0"><channel><title>  T  </title><item>
      <title>
        Spaced
        out
      </title>
      <guid>   </guid>
      <link>  https://x.example/a  </link>
      <description>  <![CDATA[  <p>s</p>  ]]>  </description>
      <category>  a  </category><category></category><category>a</category>
    </item></channel></rss>"""

    [entry] = parse_feed(body).entries

    assert entry.title == "Spaced out"
    assert entry.guid is None
    assert entry.link == "https://x.example/a"
    assert entry.summary == "<p>s</p>"
    assert entry.categories == ("a",)


def test_markup_in_titles_becomes_text() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>F</title><entry>
      <id>x</id>
      <title type="html">Line one&lt;br/&gt;line two &amp;lt;3 Pu&lt;b&gt;tin&lt;/b&gt;</title>
    </entry></feed>"""

    [entry] = parse_feed(body).entries

    assert entry.title == "Line one line two <3 Putin"


def test_first_alternate_link_when_there_is_no_main_link() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>F</title><entry><id>x</id>
      <title>t</title><link rel="enclosure" href="https://x.example/a.mp3"/>
      <link rel="alternate" href="https://x.example/page"/></entry></feed>"""

    [entry] = parse_feed(body).entries

    assert entry.link == "https://x.example/page"


def test_several_content_values_are_joined_without_the_summary() -> None:
    body = b"""<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">
      <channel><title>F</title><item><title>t</title><description>short</description>
      <content:encoded>first</content:encoded><content:encoded> second </content:encoded>
      <content:encoded>short</content:encoded></item></channel></rss>"""

    entry = parse_feed(body).entries[0]

    assert (entry.summary, entry.content) == ("short", "first\nsecond")


# --- character encodings: the document's bytes decide when the labels disagree ---

CAFE_TITLE = "Les nouvelles du café"
CAFE_ENTRY = "Élections à Genève : « débat » houleux"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"last-modified": "Tue, 25 Nov 2025 10:00:00 GMT"},  # as a file: fetch gives it
        {"content-type": "application/rss+xml"},
        {"content-type": "text/xml"},  # us-ascii by RFC 3023
        {"content-type": "application/rss+xml; charset=utf-8"},  # disagrees
        {"content-type": "text/xml; charset=windows-1251"},  # disagrees, also legacy
        {"content-type": "application/xml; charset=latin1"},
    ],
)
def test_iso_8859_1_feed(headers: dict[str, str] | None) -> None:
    feed = parse_feed(data("iso-8859-1.xml"), headers)

    assert feed.error is None
    assert feed.title == CAFE_TITLE
    [entry] = feed.entries
    assert entry.title == CAFE_ENTRY
    assert entry.summary == "Déjà vu, naïveté, façade."


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"content-type": "application/rss+xml"},
        {"content-type": "text/xml; charset=iso-8859-1"},
    ],
)
def test_latin_1_without_a_declaration_or_with_only_the_http_charset(
    headers: dict[str, str] | None,
) -> None:
    body = data("iso-8859-1.xml").split(b"\n", 1)[1]  # no XML declaration

    feed = parse_feed(body, headers)

    assert (feed.title, feed.entries[0].title) == (CAFE_TITLE, CAFE_ENTRY)


def test_an_iso_8859_1_label_means_windows_1252_as_in_browsers() -> None:
    body = b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel>'
    body += b"<title>\x93Quoted\x94 \x96 caf\xe9</title></channel></rss>"

    assert parse_feed(body).title == "\u201cQuoted\u201d \u2013 café"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"content-type": "application/rss+xml; charset=utf-8"},
        {"content-type": "text/xml; charset=iso-8859-1"},
        {"content-type": "text/xml"},
    ],
)
def test_utf_16_with_a_byte_order_mark(headers: dict[str, str] | None) -> None:
    feed = parse_feed(data("utf-16le-bom.xml"), headers)

    assert feed.error is None
    assert feed.title == "Мир и café — 世界"
    [entry] = feed.entries
    assert entry.title == "Путин, Zelenskyy, 東京"
    assert entry.summary == "Ünïcödé everywhere."


@pytest.mark.parametrize(
    "encoding", ["utf-16-be", "utf-16-le", "utf-32-le", "utf-32-be", "utf-8-sig"]
)
def test_other_unicode_forms(encoding: str) -> None:
    text = '<?xml version="1.0" encoding="%s"?><rss version="2.0"><channel><title>Мир</title>'
    text = text % encoding.removesuffix("-sig") + "</channel></rss>"
    body = text.encode(encoding)
    if encoding.startswith("utf-16") or encoding.startswith("utf-32"):
        body = ("\ufeff" + text).encode(encoding)

    feed = parse_feed(body, {"content-type": "application/xml; charset=windows-1251"})

    assert (feed.title, feed.error) == ("Мир", None)


def test_utf_16_without_a_byte_order_mark() -> None:
    body = data("utf-16le-bom.xml")[2:]

    assert parse_feed(body).title == "Мир и café — 世界"


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {"content-type": "text/xml; charset=iso-8859-1"},  # a server default, wrong
        {"content-type": "application/rss+xml; charset=windows-1251"},
        {"last-modified": "Tue, 25 Nov 2025 10:00:00 GMT"},
    ],
)
def test_utf_8_wins_over_a_wrong_label(headers: dict[str, str] | None) -> None:
    body = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
    body += "<title>Café Путин</title></channel></rss>"

    assert parse_feed(body.encode(), headers).title == "Café Путин"
    assert parse_feed(body.split("?>", 1)[1].encode(), headers).title == "Café Путин"


def test_the_declaration_wins_over_another_legacy_http_charset() -> None:
    feed = parse_feed(
        data("windows-1251.xml"), {"content-type": "application/rss+xml; charset=iso-8859-1"}
    )

    assert feed.title == "Новости мира"


def test_the_http_charset_when_the_document_declares_nothing() -> None:
    body = data("windows-1251.xml").split(b"\n", 1)[1]

    feed = parse_feed(body, {"content-type": "text/xml; charset=windows-1251"})

    assert feed.title == "Новости мира"


@pytest.mark.parametrize("label", ["rot13", "utf-7", "no-such-charset", "unicode_escape"])
def test_labels_that_are_not_charsets_are_ignored(label: str) -> None:
    body = f'<?xml version="1.0" encoding="{label}"?><rss version="2.0"><channel>'
    body_bytes = body.encode() + b"<title>caf\xe9 \\u0041</title></channel></rss>"

    feed = parse_feed(body_bytes, {"content-type": f"text/xml; charset={label}"})

    assert feed.title == "café \\u0041"


def test_an_xml_stylesheet_instruction_is_not_taken_for_the_declaration() -> None:
    body = '<?xml-stylesheet href="s.xsl"?><rss version="2.0"><channel><title>Café</title>'
    body += "</channel></rss>"

    assert parse_feed(body.encode()).title == "Café"


# --- how long the feed says it stays unchanged ---

SY = 'xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"'


def rss_channel(inside: str) -> bytes:
    return f'<rss version="2.0" {SY}><channel><title>T</title>{inside}</channel></rss>'.encode()


@pytest.mark.parametrize(
    ("inside", "ttl"),
    [
        ("<ttl>60</ttl>", timedelta(minutes=60)),
        (" <ttl> 15 </ttl> ", timedelta(minutes=15)),
        ("<sy:updatePeriod>hourly</sy:updatePeriod>", timedelta(hours=1)),
        (
            "<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>2</sy:updateFrequency>",
            timedelta(minutes=30),
        ),
        (
            "<sy:updatePeriod>Daily</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>",
            timedelta(hours=6),
        ),
        ("<sy:updatePeriod>weekly</sy:updatePeriod>", timedelta(weeks=1)),
        ("<sy:updatePeriod>monthly</sy:updatePeriod>", timedelta(days=30)),
        ("<sy:updatePeriod>yearly</sy:updatePeriod>", timedelta(days=365)),
        # Both: the larger lower bound.
        ("<ttl>60</ttl><sy:updatePeriod>daily</sy:updatePeriod>", timedelta(days=1)),
        (
            "<ttl>90</ttl><sy:updatePeriod>hourly</sy:updatePeriod>"
            "<sy:updateFrequency>2</sy:updateFrequency>",
            timedelta(minutes=90),
        ),
        ("<ttl>99999999999999999999</ttl>", timedelta(days=365)),
        ("<ttl>00000000000000000030</ttl>", timedelta(minutes=30)),
        ("", None),
        ("<ttl>0</ttl>", None),
        ("<ttl>-5</ttl>", None),
        ("<ttl>soon</ttl>", None),
        ("<ttl>١٥</ttl>", None),  # digits, but not ASCII ones
        ("<sy:updatePeriod>fortnightly</sy:updatePeriod>", None),
        (
            "<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>0</sy:updateFrequency>",
            timedelta(hours=1),
        ),
        (
            "<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>x</sy:updateFrequency>",
            timedelta(hours=1),
        ),
    ],
)
def test_ttl(inside: str, ttl: timedelta | None) -> None:
    feed = parse_feed(rss_channel(inside))

    assert feed.error is None
    assert feed.ttl == ttl


def test_ttl_in_rss_1_0() -> None:
    body = f"""<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
      xmlns="http://purl.org/rss/1.0/" {SY}>
      <channel rdf:about="https://x.example/"><title>T</title>
        <sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>
      </channel></rdf:RDF>"""

    assert parse_feed(body.encode()).ttl == timedelta(minutes=15)


def test_no_ttl_in_the_test_feeds() -> None:
    assert {parse_feed(data(name)).ttl for name in ("rss2.xml", "atom.xml", "rss1.rdf")} == {None}


# --- hidden elements (feedparser's sanitizer is off; parse_feed drops them itself) ---

HIDDEN_ITEM = """<?xml version="1.0"?><rss version="2.0"><channel><title>F</title><item>
<title>{title}</title><link>https://f.example/1</link>
<description><![CDATA[{summary}]]></description>
<content:encoded xmlns:content="http://purl.org/rss/1.0/modules/content/"><![CDATA[{content}]]></content:encoded>
</item></channel></rss>"""


def hidden_item(title: str = "t", summary: str = "s", content: str = "c") -> ParsedEntry:
    body = HIDDEN_ITEM.format(title=title, summary=summary, content=content)
    (entry,) = parse_feed(body.encode()).entries
    return entry


def test_script_style_and_applet_text_is_dropped_from_html() -> None:
    entry = hidden_item(
        summary='<p>Sanctions</p><script type="text/javascript">var hiddenword = 1;</script>'
        "<STYLE>.hiddenstyle { }</STYLE ><p>apply</p>",
        content="<p>Body</p><applet code=x>hiddenapplet</applet><Script>a<b;</sCRIPT>end",
    )

    assert entry.summary == "<p>Sanctions</p>  <p>apply</p>"
    assert entry.content == "<p>Body</p>  end"


def test_an_html_title_loses_its_script() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>F</title><entry><id>x</id>
      <title type="html">Sanctions &lt;script&gt;titlescript()&lt;/script&gt; today</title>
    </entry></feed>"""

    [entry] = parse_feed(body).entries

    assert entry.title == "Sanctions today"


def test_an_element_left_open_hides_the_rest() -> None:
    entry = hidden_item(summary="<p>Kept</p><style>p { color: red } and everything after")

    assert entry.summary == "<p>Kept</p>"


def test_plain_text_keeps_what_looks_like_a_script_tag() -> None:
    body = b"""<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>F</title>
    <entry><id>1</id><title type="text">Why &lt;script&gt; tags matter</title>
    <summary type="text">Use &lt;script&gt; with care</summary></entry></feed>"""

    (entry,) = parse_feed(body).entries

    assert entry.summary == "Use <script> with care"


def test_many_open_script_tags_take_linear_time() -> None:
    summary = "<script>" * 20_000 + "x" * 100 + "</script>" + "<p>kept</p>" * 10_000

    entry = hidden_item(summary=summary)

    assert entry.summary == "<p>kept</p>" * 10_000


def test_text_broken_by_lines_and_references_comes_whole() -> None:
    # expat reports such text in many pieces (one per line and per reference) unless
    # buffer_text is on; either way each field must come out whole, in order.
    description = "&lt;p&gt;Line one &amp;amp; more,\nline &#x74;wo&lt;/p&gt;\n" * 3000
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<item><title>A &amp; B\nC</title><description>{description}</description>"
        "<guid>g</guid></item></channel></rss>"
    ).encode()

    (entry,) = parse_feed(body).entries

    assert entry.title == "A & B C"
    assert entry.summary == ("<p>Line one &amp; more,\nline two</p>\n" * 3000).strip()
