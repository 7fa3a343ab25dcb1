from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from apprise.conversion.format import markdown_to_html
from hypothesis import example, given, settings
from hypothesis import strategies as st

from watcher.models import Alert, AlertState, Entry
from watcher.notify import BodyFormat
from watcher.render import (
    AlertView,
    Kind,
    TemplateError,
    TemplateOverride,
    compile_template,
    excerpt,
    group_by_entry,
    html_to_text,
    kind_for_url,
    one_line,
    render,
    render_alert,
    render_group,
)
from watcher.templates.sandbox import MAX_OUTPUT_CHARS, MAX_TEMPLATE_CHARS
from watcher.templates.sanitize import escape_markdown, safe_link


def entry(**fields: object) -> Entry:
    values: dict[str, object] = {
        "feed": "Sample wire",
        "key": "guid:1",
        "link_key": "https://example.org/a",
        "content_hash": "0" * 64,
        "title": "Sanctions loom",
        "link": "https://example.org/a",
        "summary": "<p>New <b>sanctions</b> could start on Friday.</p><script>alert(1)</script>",
        "published": datetime(2025, 8, 7, 9, 30, tzinfo=UTC),
    }
    values.update(fields)
    return Entry(**values)  # type: ignore[arg-type]


def test_html_becomes_readable_text_without_scripts() -> None:
    assert (
        html_to_text("<p>a<br>b</p><script>evil()</script><style>x{}</style>&amp; c") == "a b & c"
    )


def test_title_is_one_safe_line() -> None:
    assert one_line("Breaking\r\nBcc: victim@example.org\x00", 200) == (
        "Breaking Bcc: victim@example.org"
    )
    assert one_line("x" * 300, 10) == "xxxxxxxxx…"


def test_excerpt_is_cut_at_a_word() -> None:
    text = excerpt(entry(summary="word " * 100), limit=30)
    assert text.endswith(" …")
    assert len(text) <= 32


def test_message_names_story_source_rule_terms_and_link() -> None:
    message = render(entry(), rules=["sanctions"], terms=["sanctions"])
    assert message.title == "[sanctions] Sanctions loom"
    assert "New sanctions could start on Friday." in message.body
    assert "alert(1)" not in message.body
    assert "Sample wire · 2025-08-07 09:30 UTC" in message.body
    assert "Matched: sanctions" in message.body
    assert message.body.rstrip().endswith("https://example.org/a")


def test_entry_text_is_never_a_template() -> None:
    message = render(entry(title="{{ 7*7 }} {% raw %}"), rules=["r"], terms=[])
    assert "{{ 7*7 }} {% raw %}" in message.title


# --- kinds of target -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("mailto://user:pw@example.org?to=a@example.org", Kind.HTML),
        ("mailtos://user:pw@example.org", Kind.HTML),
        ("mailto://user:pw@example.org?format=text", Kind.TEXT),
        ("slack://T1/B1/C1", Kind.MARKDOWN),
        ("discord://1/abc", Kind.MARKDOWN),
        ("mmost://127.0.0.1:8065/token", Kind.MARKDOWN),
        ("tgram://bot/chat", Kind.MARKDOWN),
        ("matrixs://user:pw@example.org/#room", Kind.MARKDOWN),
        ("json://127.0.0.1:8000/hook", Kind.TEXT),
        ("form://127.0.0.1/hook", Kind.TEXT),
        ("xml://127.0.0.1/hook", Kind.TEXT),
        ("json://127.0.0.1/hook?format=markdown", Kind.MARKDOWN),
        ("console://", Kind.TEXT),
        ("ntfy://127.0.0.1/topic", Kind.TEXT),
        ("mqtt://127.0.0.1/topic", Kind.TEXT),
        (None, Kind.TEXT),
    ],
)
def test_kind_follows_the_target_url(url: str | None, kind: Kind) -> None:
    assert kind_for_url(url) is kind


# --- hostile entries -------------------------------------------------------------------

HOSTILE_HTML = (
    '<p onclick="x()">Hello <b>sanctions</b></p><script>steal()</script>'
    '<img src="http://10.0.0.1/pixel.gif"><img src=x onerror="alert(1)">'
    '<a href="javascript:alert(2)">js</a> <a href="/relative">rel</a> '
    '<a href="https://example.org/ok" target="_blank">ok</a>'
    '<style>p{}</style><form><input name="pw"></form><iframe src="https://x"></iframe>'
)


def test_html_email_keeps_only_the_allowlist() -> None:
    message = render(entry(summary=HOSTILE_HTML), ["r"], ["sanctions"], kind=Kind.HTML)
    body = message.body.lower()
    assert message.body_format is BodyFormat.HTML
    for banned in ("<script", "steal", "<img", "onerror", "onclick", "javascript:"):
        assert banned not in body
    for banned in ("<style", "<form", "<input", "<iframe", "10.0.0.1", "/relative", "target="):
        assert banned not in body
    assert '<a href="https://example.org/ok" rel="noopener noreferrer">ok</a>' in message.body
    assert "<b><mark>sanctions</mark></b>" in message.body


def test_entry_text_is_escaped_in_html() -> None:
    message = render(entry(title="&lt;script&gt;x()&lt;/script&gt; & co"), ["r"], [], Kind.HTML)
    assert "&lt;script&gt;x()&lt;/script&gt; &amp; co" in message.body
    assert message.title == "[r] <script>x()</script> & co"  # a Subject is plain text


@pytest.mark.parametrize("kind", list(Kind))
def test_entry_text_is_never_a_template_in_any_kind(kind: Kind) -> None:
    message = render(
        entry(title="{{ 7*7 }} {% raw %}", summary="{{ config }} {% for x in y %}"),
        ["r"],
        [],
        kind,
    )
    shown = (message.title + message.body).replace("\\", "")  # Markdown escapes removed
    assert "49" not in shown
    assert "{{ 7*7 }} {% raw %}" in shown
    assert "{{ config }} {% for x in y %}" in shown


@pytest.mark.parametrize("kind", list(Kind))
def test_title_has_no_line_breaks_in_any_kind(kind: Kind) -> None:
    message = render(entry(title="Breaking\r\nBcc: victim@example.org\x85\u2028x"), ["r"], [], kind)
    first_line = (message.title or message.body).splitlines()[0]
    assert "Breaking Bcc: victim@example.org x" in first_line.replace("\\", "")


def test_chat_markdown_is_escaped_and_mentions_defused() -> None:
    message = render(
        entry(
            title="@everyone [click](javascript:alert(1)) *bold* `code`",
            summary="Hi @here, @channel and <!channel>; mail press@example.org. # not a heading",
        ),
        ["r"],
        [],
        Kind.MARKDOWN,
    )
    assert message.title == ""
    assert message.body_format is BodyFormat.MARKDOWN
    body = message.body
    assert body.startswith("**\\[r\\] @\u200beveryone \\[click\\]\\(javascript:alert\\(1\\)\\)")
    assert "\\*bold\\* \\`code\\`" in body
    for mention in ("@everyone", "@here", "@channel", "<!channel"):
        assert mention not in body
    assert "press@example.org" in body
    assert "<https://example.org/a>" in body


def test_plain_text_defuses_mass_mentions_only() -> None:
    message = render(entry(title="@everyone meets @putin", summary="mail a@here.org"), ["r"], [])
    assert "@\u200beveryone meets @putin" in message.title
    assert "a@here.org" in message.body


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
@example("\r#")  # a bare CR starts a line: the heading mark must still be escaped
@example("a\u2028- b")
def test_escaped_markdown_never_becomes_markup(text: str) -> None:
    rendered = markdown_to_html(escape_markdown(text))
    tags = set(re.findall(r"<\s*/?\s*([a-zA-Z][a-zA-Z0-9]*)", rendered))
    assert tags <= {"p", "br", "pre", "code"}  # paragraphs; indented lines become code
    assert "@everyone" not in rendered


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
@example("<![0")  # HTMLParser asserts on this broken declaration
def test_titles_are_always_one_clean_line(title: str) -> None:
    message = render(entry(title=title), ["r"], [])
    assert len(message.title) <= 200
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", message.title)


def test_links_are_http_and_cannot_break_out() -> None:
    assert safe_link("javascript:alert(1)") is None
    assert safe_link("data:text/html,<script>") is None
    assert safe_link("https://ex ample.org/") is None
    assert safe_link("https://example.org/a b") is None
    assert safe_link('https://example.org/a_(b)?q=<x>&y="z"#f\'g') == (
        "https://example.org/a_%28b%29?q=%3Cx%3E&y=%22z%22#f%27g"
    )
    message = render(entry(link="javascript:alert(1)"), ["r"], [], Kind.HTML)
    assert "javascript" not in message.body


# --- groups ------------------------------------------------------------------------------


def view(key: str, title: str, *rules: str) -> AlertView:
    return AlertView(entry(key=f"guid:{key}", title=title), rules, ("sanctions",), (key * 64,))


def test_group_lists_every_story_under_one_title() -> None:
    message = render_group([view("a", "First", "r1"), view("b", "Second", "r2")], Kind.TEXT)
    assert message.title == "[r1, r2] 2 new stories"
    assert "1. First" in message.body
    assert "2. Second" in message.body
    assert message.body.count("Source:  Sample wire") == 2


def test_group_key_is_stable_and_order_free() -> None:
    a, b = view("a", "First", "r"), view("b", "Second", "r")
    assert render_group([a], Kind.TEXT).key == "a" * 64
    assert render_group([a, b], Kind.TEXT).key == render_group([b, a], Kind.TEXT).key
    assert render_group([a, b], Kind.TEXT).key not in {"a" * 64, "b" * 64}


def test_big_digest_is_cut_with_a_count_of_the_rest() -> None:
    views = [view(str(n), f"Story {n}", "r") for n in range(60)]
    message = render_group(views, Kind.MARKDOWN)
    assert "60 new stories" in message.body
    assert "Story 49" in message.body
    assert "Story 50" not in message.body
    assert message.body.endswith("… and 10 more")


def test_empty_group_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        render_group([], Kind.TEXT)


def test_alerts_for_one_story_merge_into_one_view() -> None:
    story = entry()
    alerts = [alert(story, "sanctions", ("sanctions",)), alert(story, "oil", ("oil",))]
    (merged,) = group_by_entry(alerts)
    assert merged.rules == ("sanctions", "oil")
    assert merged.terms == ("sanctions", "oil")
    message = render_group([merged], Kind.HTML)
    assert message.title == "[sanctions, oil] Sanctions loom"
    assert message.thread is not None


def alert(story: Entry, rule: str, terms: tuple[str, ...]) -> Alert:
    return Alert(
        id=1,
        idempotency_key=rule * 8,
        rule=rule,
        target="t",
        state=AlertState.PENDING,
        attempts=0,
        entry=story,
        terms=terms,
        created_at=datetime(2025, 8, 7, tzinfo=UTC),
    )


def test_render_alert_carries_key_thread_and_link() -> None:
    message = render_alert(alert(entry(), "sanctions", ()), "mailto://u:p@example.org")
    assert message.body_format is BodyFormat.HTML
    assert message.key == "sanctions" * 8
    assert message.link == "https://example.org/a"
    same_story_other_feed = entry(feed="Other wire", key="guid:9")
    assert render_alert(alert(same_story_other_feed, "x", ()), None).thread == message.thread


# --- operator templates ------------------------------------------------------------------


def test_override_templates_are_used_with_entry_data_as_variables() -> None:
    override = TemplateOverride(
        title="{{ alert.feed }}: {{ alert.title }}",
        body="*{{ alert.title }}* via {{ alert.link }} ({{ rules | join('/') }})",
    )
    story = entry(title="{{ 7*7 }} <b>x</b> *y*")
    text = render(story, ["r1", "r2"], [], Kind.TEXT, override)
    assert text.title == "Sample wire: {{ 7*7 }} x *y*"
    assert text.body == "*{{ 7*7 }} x *y** via https://example.org/a (r1/r2)"
    chat = render(story, ["r1"], [], Kind.MARKDOWN, override)
    assert chat.body == "*{{ 7\\*7 }} x \\*y\\** via https://example.org/a (r1)"
    html = render(
        entry(title="a <b> & c"), ["r"], [], Kind.HTML, TemplateOverride(body="{{ alert.title }}")
    )
    assert html.body == "a &amp; c"


def test_override_that_fails_at_send_time_falls_back_to_the_default(
    caplog: pytest.LogCaptureFixture,
) -> None:
    message = render(entry(), ["r"], [], Kind.TEXT, TemplateOverride(body="{{ alerts[5].title }}"))
    assert "Source:  Sample wire" in message.body
    assert "custom body template failed" in caplog.text


def test_override_output_is_capped() -> None:
    loop = "{% for i in range(99999) %}{{ alert.title }}{% endfor %}"
    message = render(entry(), ["r"], [], Kind.TEXT, TemplateOverride(body=loop))
    assert len(message.body) <= MAX_OUTPUT_CHARS


def test_compile_template_accepts_a_good_template() -> None:
    compile_template("{% for a in alerts %}{{ a.title | highlight(a.terms) }}{% endfor %}")
    compile_template("[{{ rules | join(', ') }}] {{ alert.title }}", part="title")


@pytest.mark.parametrize(
    ("source", "line", "words"),
    [
        ("fine\n{{ alert.title }\n", 2, "syntax error"),
        ("{% for a in alerts %}\n{{ a.title }}\n", 2, "syntax error"),
        ("a\nb\n{{ alert.titel }}", 3, "titel"),
        ("{{ alert.title }}\n{{ ''.__class__.__mro__ }}", 2, "unsafe"),
        ("{% raw %}{{ x }}", 1, "raw"),
    ],
)
def test_compile_template_names_the_line_of_a_mistake(source: str, line: int, words: str) -> None:
    with pytest.raises(ValueError, match=words) as caught:
        compile_template(source)
    assert isinstance(caught.value, TemplateError)
    assert caught.value.lineno == line
    assert str(caught.value).startswith(f"line {line}: ")


def test_compile_template_refuses_huge_sources_and_title_only_variables() -> None:
    with pytest.raises(TemplateError, match="limit"):
        compile_template("x" * (MAX_TEMPLATE_CHARS + 1))
    with pytest.raises(TemplateError, match="'title' is undefined"):
        compile_template("{{ title }}", part="title")
