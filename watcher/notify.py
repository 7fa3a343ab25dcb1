"""Sending messages: the only module that imports apprise.

Each target URL is sent to on its own, so one target's failure is recorded for that
target alone (Apprise's notify() folds every URL it holds into one result). Apprise
returns a failed result rather than raising; both are turned into a `SendOutcome`.
A `console://` target prints the message to standard output.

A message's identity travels where Apprise lets it: email gets `X-Watcher-Alert-Key` and
`References`/`In-Reply-To` naming its story (Apprise always writes its own random
Message-ID and would duplicate ours), JSON/form/XML webhooks get `X-Watcher-Alert-Key`,
ntfy gets the story link as its click action. They ride in the URL (`?+Header=value`,
`?click=`), the form Apprise documents for them.
"""

from __future__ import annotations

import enum
import sys
import threading
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote

import apprise
from apprise.decorators import notify as apprise_plugin

CONSOLE_SCHEMA = "console"
ALERT_KEY_HEADER = "X-Watcher-Alert-Key"
THREAD_DOMAIN = "watcher"  # right-hand side of the story's References id
_EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
_HEADER_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
_NTFY_SCHEMES = frozenset({"ntfy", "ntfys"})
_console_lock = threading.Lock()
_console_stream: list[TextIO | None] = [None]  # None: the current sys.stdout


class BodyFormat(enum.StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    body_format: BodyFormat = BodyFormat.TEXT
    key: str | None = None  # the alert's idempotency key: a re-sent duplicate carries it too
    thread: str | None = None  # the story's id, shared by every message about it
    link: str | None = None  # the story's URL, for services with a click action


@dataclass(frozen=True, slots=True)
class SendOutcome:
    ok: bool
    error: str | None = None


@apprise_plugin(on=CONSOLE_SCHEMA, name="watcher console")  # type: ignore[untyped-decorator,no-untyped-call]
def _print_to_console(body: str, title: str, *args: Any, **kwargs: Any) -> bool:
    stream = _console_stream[0] or sys.stdout
    with _console_lock:
        stream.write(f"{title}\n{body}\n\n" if title else f"{body}\n\n")
        stream.flush()
    return True


def set_console_stream(stream: TextIO | None) -> None:
    """Where console:// prints (None: standard output)."""
    _console_stream[0] = stream


def check_target_url(url: str) -> str | None:
    """Why Apprise cannot use `url`, or None when it can."""
    if "://" not in url:
        return f"{url!r} is not a URL"
    if apprise.Apprise.instantiate(url) is None:
        schema = url.split("://", 1)[0]
        return f"Apprise cannot use this {schema}:// URL (unknown service or missing parts)"
    return None


def with_message_params(url: str, message: Message) -> str:
    """`url` plus the message's identity and link, in the parameters its service reads."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    query = url.split("?", 1)[1] if "?" in url else ""
    params: list[tuple[str, str]] = []
    if message.key and scheme in _EMAIL_SCHEMES | _HEADER_SCHEMES:
        params.append((f"+{ALERT_KEY_HEADER}", message.key))
    if message.thread and scheme in _EMAIL_SCHEMES:
        story = f"<story.{message.thread}@{THREAD_DOMAIN}>"
        params += [("+References", story), ("+In-Reply-To", story)]
    if message.link and scheme in _NTFY_SCHEMES and "click=" not in query:
        params.append(("click", message.link))
    if not params:
        return url
    encoded = "&".join(f"{quote(name, safe='+')}={quote(value, safe='')}" for name, value in params)
    return f"{url}{'&' if '?' in url else '?'}{encoded}"


def send(url: str, message: Message) -> SendOutcome:
    """Send one message to one Apprise URL. Never raises for delivery trouble."""
    service = apprise.Apprise()
    if not service.add(with_message_params(url, message)):
        return SendOutcome(False, "invalid notification URL")
    try:
        result = service.notify(
            body=message.body,
            title=message.title,
            body_format=message.body_format.value,
            log_level=30,  # WARNING: keep the reason a send failed
        )
    except Exception as exc:  # a plugin bug must not kill the delivery worker
        return SendOutcome(False, f"{type(exc).__name__}: {exc}")
    if result:
        return SendOutcome(True)
    reasons = [entry.message for entry in result.logs() if entry.level in {"WARNING", "ERROR"}]
    return SendOutcome(False, "; ".join(reasons)[-500:] or "the service reported a failure")
