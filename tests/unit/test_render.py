from __future__ import annotations

from datetime import UTC, datetime

from watcher.models import Entry
from watcher.render import excerpt, html_to_text, one_line, render


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
