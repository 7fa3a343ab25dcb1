"""Rendered alerts through Apprise to real servers on 127.0.0.1: SMTP, JSON webhook,
Mattermost-style chat, ntfy-style push and MQTT (Mosquitto)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

from tests.support import sinks
from tests.support.sinks import ChatSink, MqttSubscriber, NtfySink, SmtpSink, WebhookSink
from watcher.models import Alert, AlertState, Entry
from watcher.notify import ALERT_KEY_HEADER, send
from watcher.render import AlertView, Kind, group_by_entry, render_alert, render_group

# Fixtures beyond conftest's smtp_sink/webhook_sink, bound here so pytest finds them.
ntfy_sink = sinks.ntfy_sink
chat_sink = sinks.chat_sink
mqtt_subscriber = sinks.mqtt_subscriber

STORY_LINK = "https://example.org/news/sanctions-oil"
HOSTILE_SUMMARY = (
    "<p>New <b>sanctions</b> could hit buyers of Russian crude.</p>"
    "<script>steal()</script>"
    '<img src="http://10.0.0.1/pixel.gif" width="1" height="1">'
    '<p onclick="evil()">Read <a href="javascript:alert(1)">this</a> and '
    '<a href="https://example.org/more" onmouseover="evil()">more</a>.</p>'
    '<img src=x onerror="alert(2)"><style>p{display:none}</style>'
    '<form action="https://evil.example/"><input name="password"></form>'
)


def make_entry(**fields: object) -> Entry:
    values: dict[str, object] = {
        "feed": "Test wire",
        "key": "guid:wire-1",
        "link_key": STORY_LINK,
        "content_hash": "0" * 64,
        "title": "Washington weighs sanctions on buyers of Russian oil",
        "link": STORY_LINK,
        "summary": HOSTILE_SUMMARY,
        "published": datetime(2025, 8, 7, 9, 30, tzinfo=UTC),
    }
    values.update(fields)
    return Entry(**values)  # type: ignore[arg-type]


def make_alert(entry: Entry | None = None, rule: str = "sanctions", key: str = "a" * 64) -> Alert:
    return Alert(
        id=1,
        idempotency_key=key,
        rule=rule,
        target="alerts",
        state=AlertState.PENDING,
        attempts=0,
        entry=entry or make_entry(),
        terms=("sanctions",),
        created_at=datetime(2025, 8, 7, 9, 31, tzinfo=UTC),
    )


def deliver(url: str, alert: Alert) -> None:
    outcome = send(url, render_alert(alert, url))
    assert outcome.ok, outcome.error


def part(message: EmailMessage, subtype: str) -> str:
    body = message.get_body((subtype,))
    assert body is not None, f"no text/{subtype} part"
    content = body.get_content()
    assert isinstance(content, str)
    return content


def test_html_email_has_text_and_html_parts_with_marked_terms(smtp_sink: SmtpSink) -> None:
    deliver(smtp_sink.apprise_url(), make_alert())

    (message,) = smtp_sink.wait_for(1)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == (
        "[sanctions] Washington weighs sanctions on buyers of Russian oil"
    )
    html = part(message, "html")
    assert "<mark>sanctions</mark>" in html
    assert f'href="{STORY_LINK}"' in html
    lowered = html.lower()
    for banned in ("<script", "steal()", "<img", "onerror", "onclick", "onmouseover"):
        assert banned not in lowered
    for banned in ("javascript:", "<style", "<form", "<input", "10.0.0.1"):
        assert banned not in lowered
    text = part(message, "plain")
    assert "New sanctions could hit buyers of Russian crude." in text
    assert STORY_LINK in text
    assert "Source: Test wire · 2025-08-07 09:30 UTC" in text
    assert "steal()" not in text


def test_plain_email_is_a_single_text_part(smtp_sink: SmtpSink) -> None:
    deliver(smtp_sink.apprise_url() + "&format=text", make_alert())

    (message,) = smtp_sink.wait_for(1)
    assert message.get_content_type() == "text/plain"
    body = message.get_content()
    assert "Matched: sanctions" in body
    assert body.rstrip().endswith(STORY_LINK)
    assert "<" not in body


def test_resent_email_carries_the_same_key_and_story_thread(smtp_sink: SmtpSink) -> None:
    url = smtp_sink.apprise_url()
    deliver(url, make_alert())
    deliver(url, make_alert())  # a crash before mark-sent re-sends the same alert
    other_story = make_entry(key="guid:wire-9", link_key="https://example.org/other")
    deliver(url, make_alert(other_story, key="b" * 64))

    first, again, other = smtp_sink.wait_for(3)
    assert first[ALERT_KEY_HEADER] == again[ALERT_KEY_HEADER] == "a" * 64
    assert other[ALERT_KEY_HEADER] == "b" * 64
    assert first["References"] == again["References"] == first["In-Reply-To"]
    assert first["References"].startswith("<story.")
    assert other["References"] != first["References"]
    # Apprise owns Message-ID: exactly one per message.
    assert len(first.get_all("Message-ID") or []) == 1


def test_hostile_title_adds_no_header_and_is_not_a_template(smtp_sink: SmtpSink) -> None:
    title = "Breaking\r\nBcc: victim@example.org\r\nX-Evil: 1\n{{ 7*7 }} {% raw %}"
    deliver(smtp_sink.apprise_url(), make_alert(make_entry(title=title)))

    (message,) = smtp_sink.wait_for(1)
    assert smtp_sink.recipients == [["reader@example.org"]]
    assert message["Bcc"] is None
    assert message["X-Evil"] is None
    assert len(message.get_all("Subject") or []) == 1
    assert message["Subject"] == (
        "[sanctions] Breaking Bcc: victim@example.org X-Evil: 1 {{ 7*7 }} {% raw %}"
    )
    assert "{{ 7*7 }} {% raw %}" in part(message, "html")
    assert "49" not in message["Subject"]


def test_several_rules_for_one_story_make_one_email(smtp_sink: SmtpSink) -> None:
    alerts = [make_alert(rule="sanctions"), make_alert(rule="oil", key="c" * 64)]
    (view,) = group_by_entry(alerts)
    outcome = send(smtp_sink.apprise_url(), render_group([view], Kind.HTML))
    assert outcome.ok, outcome.error

    (message,) = smtp_sink.wait_for(1)
    assert message["Subject"].startswith("[sanctions, oil] Washington weighs")
    assert "Rule: sanctions, oil" in part(message, "plain")


def test_json_webhook_gets_title_text_body_and_alert_key(webhook_sink: WebhookSink) -> None:
    deliver(webhook_sink.apprise_url(), make_alert())

    (hook,) = webhook_sink.wait_for(1)
    payload = hook.json()
    assert payload["title"] == "[sanctions] Washington weighs sanctions on buyers of Russian oil"
    assert "New sanctions could hit buyers of Russian crude." in payload["message"]
    assert STORY_LINK in payload["message"]
    assert "steal()" not in payload["message"]
    assert "<" not in payload["message"]
    assert hook.headers[ALERT_KEY_HEADER] == "a" * 64


def test_chat_webhook_gets_escaped_markdown(chat_sink: ChatSink) -> None:
    hostile = make_entry(
        title="@everyone *urgent* <!channel> [click](javascript:alert(1)) {{ 7*7 }}",
        summary="Ping @here and @channel: <b>sanctions</b> now. <script>x()</script>",
    )
    deliver(chat_sink.apprise_url(), make_alert(hostile))

    (hook,) = chat_sink.wait_for(1)
    assert hook.path == "/hooks/watchertoken"
    text = hook.json()["text"]
    assert text.startswith("**\\[sanctions\\] @\u200beveryone \\*urgent\\*")
    assert "\\[click\\]\\(javascript:alert\\(1\\)\\)" in text
    assert "{{ 7\\*7 }}" in text
    for mention in ("@everyone", "@here", "@channel", "<!channel>"):
        assert mention not in text
    assert "x()" not in text
    assert f"<{STORY_LINK}>" in text


def test_chat_digest_lists_every_story(chat_sink: ChatSink) -> None:
    views = [
        AlertView(make_entry(), ("sanctions",), ("sanctions",), ("a" * 64,)),
        AlertView(
            make_entry(key="guid:2", title="Sanctions deadline set for Friday", link=None),
            ("sanctions",),
            ("sanctions",),
            ("b" * 64,),
        ),
    ]
    outcome = send(chat_sink.apprise_url(), render_group(views, Kind.MARKDOWN))
    assert outcome.ok, outcome.error

    text = chat_sink.wait_for(1)[0].json()["text"]
    assert text.startswith("**\\[sanctions\\] 2 new stories**")
    assert "**Washington weighs sanctions on buyers of Russian oil**" in text
    assert "**Sanctions deadline set for Friday**" in text


def test_ntfy_push_gets_title_message_priority_and_click(ntfy_sink: NtfySink) -> None:
    deliver(ntfy_sink.apprise_url("alerts", priority="high"), make_alert())

    (hook,) = ntfy_sink.wait_for(1)
    payload = hook.json()
    assert payload["topic"] == "alerts"
    assert payload["title"] == "[sanctions] Washington weighs sanctions on buyers of Russian oil"
    assert "New sanctions could hit buyers of Russian crude." in payload["message"]
    assert hook.headers["X-Priority"] == "high"
    assert hook.headers["X-Click"] == STORY_LINK


def test_mqtt_message_reaches_a_subscriber(mqtt_subscriber: MqttSubscriber) -> None:
    deliver(mqtt_subscriber.apprise_url(), make_alert())

    (payload,) = mqtt_subscriber.wait_for(1)
    text = payload.decode("utf-8")
    assert text.startswith("[sanctions] Washington weighs sanctions on buyers of Russian oil")
    assert "Matched: sanctions" in text
    assert STORY_LINK in text
