"""Turn alerts into messages: a title and a body in the format the target reads best.

The kind of body follows the target URL (`kind_for_url`): HTML for email (Apprise adds the
text/plain alternative), Markdown for chat services, plain text for everything else. Bodies
and titles come from Jinja2 templates run in a sandbox (watcher.templates); an operator can
override them per rule or target with template source (`TemplateOverride`).

Variables every template sees (entry text is always a variable, never template source):
  alerts   the stories, at most MAX_GROUP_ITEMS; each has title, link, feed, author,
           categories, published (datetime or None), published_text, rules, terms,
           excerpt (plain text) and summary_html (sanitized HTML, HTML bodies only)
  alert    the first story; count: how many stories; more: how many were left out
  rules, terms   every rule and term across the stories
  kind     "text", "html" or "markdown"
  title    (bodies only) the rendered title
Title templates produce plain text, cut to one line. The `highlight(terms)` filter marks
terms with <mark> in HTML bodies and does nothing elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs

from markupsafe import Markup

from watcher.models import Alert, Entry
from watcher.notify import BodyFormat, Message
from watcher.templates import default_source

if TYPE_CHECKING:
    from watcher.templates.sandbox import TemplateError
    from watcher.templates.sanitize import html_to_text, one_line

__all__ = [
    "AlertView",
    "Kind",
    "TemplateError",
    "TemplateOverride",
    "compile_template",
    "excerpt",
    "group_by_entry",
    "html_to_text",
    "kind_for_url",
    "one_line",
    "render",
    "render_alert",
    "render_group",
]

log = logging.getLogger(__name__)


def __getattr__(name: str) -> object:
    """TemplateError, from watcher.templates.sandbox, and html_to_text and one_line, from
    watcher.templates.sanitize: Jinja2 (about 9 MB alone) and nh3 (1.5 MB in the daemon)
    are imported when first needed (a render, a template check), not with this module."""
    if name == "TemplateError":
        from watcher.templates.sandbox import TemplateError

        return TemplateError
    if name in {"html_to_text", "one_line"}:
        from watcher.templates import sanitize

        return getattr(sanitize, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


Kind = BodyFormat  # TEXT, HTML (email, with a text alternative) or MARKDOWN (chat)

EXCERPT_CHARS = 300
TITLE_CHARS = 200
SUMMARY_HTML_CHARS = 2_000  # of entry HTML read for an email's quoted summary
MAX_GROUP_ITEMS = 50
_EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
# Services that render Markdown; Apprise converts it to each one's dialect.
_CHAT_SCHEMES = frozenset(
    {
        "slack",
        "discord",
        "mmost",
        "mmosts",
        "matrix",
        "matrixs",
        "tgram",
        "rocket",
        "rockets",
        "gchat",
        "workflow",
        "workflows",
        "webex",
        "wxteams",
        "zulip",
        "guilded",
        "twist",
    }
)


@dataclass(frozen=True, slots=True)
class AlertView:
    """One story to show: the entry, the rules that caught it and the terms that matched."""

    entry: Entry
    rules: tuple[str, ...]
    terms: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()  # idempotency keys of the alerts this view stands for

    @classmethod
    def of(cls, alert: Alert) -> AlertView:
        return cls(alert.entry, (alert.rule,), alert.terms, (alert.idempotency_key,))


@dataclass(frozen=True, slots=True)
class TemplateOverride:
    """Operator template source for the title and/or body; None keeps the default."""

    title: str | None = None
    body: str | None = None


def kind_for_url(url: str | None) -> Kind:
    """The body format for an Apprise URL: its `format=` if given, else by scheme."""
    if not url or "://" not in url:
        return Kind.TEXT
    if "?" in url:
        requested = parse_qs(url.split("?", 1)[1]).get("format", [""])[-1].lower()
        if requested in {kind.value for kind in Kind}:
            return Kind(requested)
    scheme = url.split("://", 1)[0].lower()
    if scheme in _EMAIL_SCHEMES:
        return Kind.HTML
    if scheme in _CHAT_SCHEMES:
        return Kind.MARKDOWN
    return Kind.TEXT


def group_by_entry(alerts: Iterable[Alert]) -> list[AlertView]:
    """One view per entry, naming every rule that caught it, in first-seen order."""
    views: dict[tuple[str, str], AlertView] = {}
    for alert in alerts:
        story = (alert.entry.feed, alert.entry.key)
        seen = views.get(story)
        if seen is None:
            views[story] = AlertView.of(alert)
        else:
            views[story] = AlertView(
                seen.entry,
                _distinct((*seen.rules, alert.rule)),
                _distinct((*seen.terms, *alert.terms)),
                (*seen.keys, alert.idempotency_key),
            )
    return list(views.values())


def render_alert(
    alert: Alert, target_url: str | None = None, *, override: TemplateOverride | None = None
) -> Message:
    """The message for one alert, in the format `target_url` reads (plain text if None)."""
    return render_group([AlertView.of(alert)], kind_for_url(target_url), override)


def render(
    entry: Entry,
    rules: Sequence[str],
    terms: Sequence[str],
    kind: Kind = Kind.TEXT,
    override: TemplateOverride | None = None,
) -> Message:
    return render_group([AlertView(entry, tuple(rules), tuple(terms))], kind, override)


def render_group(
    items: Sequence[AlertView], kind: Kind, override: TemplateOverride | None = None
) -> Message:
    """One message for several stories (a digest) or one story caught by several rules."""
    if not items:
        raise ValueError("render_group needs at least one alert")
    from watcher.templates.sandbox import MarkdownSafe
    from watcher.templates.sanitize import escape_markdown, one_line, safe_link

    context = _context(items, kind)
    title = one_line(
        _render_part("title", Kind.TEXT, override.title if override else None, context),
        TITLE_CHARS,
    )
    title = title or "(untitled alert)"
    # Chat services show a title differently (or blend it into the text as Markdown), so
    # the escaped title opens the body instead.
    context["title"] = MarkdownSafe(escape_markdown(title)) if kind is Kind.MARKDOWN else title
    body = _render_part("body", kind, override.body if override else None, context).strip()
    stories = {_story_id(item.entry) for item in items}
    return Message(
        title="" if kind is Kind.MARKDOWN else title,
        body=body,
        body_format=kind,
        key=_message_key(items),
        thread=stories.pop() if len(stories) == 1 else None,
        link=safe_link(items[0].entry.link) if len(items) == 1 else None,
    )


def compile_template(source: str, *, part: Literal["title", "body"] = "body") -> None:
    """Check operator template source: compile it and render it against sample alerts.

    Raises TemplateError (a ValueError) naming the line within `source` when it can.
    """
    from watcher.templates.sandbox import compile_source, render_capped

    formats = [Kind.TEXT] if part == "title" else list(Kind)
    for body_format in formats:
        template = compile_source(source, body_format)
        for sample in _samples():
            context = _context(sample, body_format)
            if part == "body":
                context["title"] = "[sample] Sample story"
            render_capped(template, context)


def excerpt(entry: Entry, limit: int = EXCERPT_CHARS) -> str:
    """A short plain-text excerpt of the entry's summary or content."""
    from watcher.templates.sanitize import html_to_text, shorten

    return shorten(html_to_text(entry.summary or entry.content), limit)


def _render_part(
    part: Literal["title", "body"], kind: Kind, source: str | None, context: dict[str, Any]
) -> str:
    from watcher.templates.sandbox import TemplateError, compile_source, render_capped

    if source is not None:
        try:
            return render_capped(compile_source(source, kind), context)
        except TemplateError as exc:
            log.warning("custom %s template failed, using the default one: %s", part, exc)
    return render_capped(compile_source(default_source(part, kind), kind), context)


def _context(items: Sequence[AlertView], kind: Kind) -> dict[str, Any]:
    stories = [_story(item, kind) for item in items[:MAX_GROUP_ITEMS]]
    return {
        "alerts": stories,
        "alert": stories[0],
        "count": len(items),
        "more": max(0, len(items) - MAX_GROUP_ITEMS),
        "rules": list(_distinct(rule for item in items for rule in item.rules)),
        "terms": list(_distinct(term for item in items for term in item.terms)),
        "kind": kind.value,
    }


def _story(item: AlertView, kind: Kind) -> dict[str, Any]:
    from watcher.templates.sandbox import MarkdownSafe
    from watcher.templates.sanitize import html_to_text, one_line, safe_link, sanitize_html, shorten

    entry = item.entry
    text = _plain if kind is Kind.TEXT else _same
    link = safe_link(entry.link)
    markup = entry.summary or entry.content
    return {
        "title": text(
            one_line(html_to_text(entry.title) or entry.link or "(untitled entry)", TITLE_CHARS)
        ),
        "link": MarkdownSafe(link) if link and kind is Kind.MARKDOWN else link,
        "feed": text(one_line(entry.feed, 120)),
        "author": text(one_line(html_to_text(entry.author), 120)),
        "categories": [text(one_line(category, 60)) for category in entry.categories[:20]],
        "published": entry.published,
        "published_text": _when(entry.published),
        "rules": list(item.rules),
        "terms": [text(one_line(term, 100)) for term in item.terms],
        "excerpt": text(shorten(html_to_text(markup), EXCERPT_CHARS)),
        "summary_html": (
            Markup(sanitize_html(markup, SUMMARY_HTML_CHARS)) if kind is Kind.HTML else ""
        ),
    }


def _plain(text: str) -> str:
    # Plain text may still end up in a chat (a webhook relay, discord?format=text).
    from watcher.templates.sanitize import defuse_mentions

    return defuse_mentions(text, everyone_only=True)


def _same(text: str) -> str:
    return text


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _distinct(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _message_key(items: Sequence[AlertView]) -> str | None:
    """The alert's idempotency key, or one derived from all of a group's keys."""
    keys = sorted({key for item in items for key in item.keys})
    if not keys:
        return None
    return keys[0] if len(keys) == 1 else _sha256("\0".join(keys))


def _story_id(entry: Entry) -> str:
    """Shared by every message about one story, whichever rule or feed caught it."""
    return _sha256(entry.link_key or f"{entry.feed}\0{entry.key}")[:32]


def _samples() -> list[list[AlertView]]:
    entry = Entry(
        feed="Sample feed",
        key="guid:sample",
        link_key="https://example.org/sample",
        content_hash="0" * 64,
        title="Sample story",
        link="https://example.org/sample",
        summary="<p>A sample <b>summary</b>.</p>",
        author="Sample author",
        categories=("sample",),
        published=datetime(2025, 1, 1, 12, 0, tzinfo=UTC),
    )
    one = AlertView(entry, ("sample",), ("sample",), ("0" * 64,))
    other = AlertView(entry, ("other",), (), ("1" * 64,))
    return [[one], [one, other]]
