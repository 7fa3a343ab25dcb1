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

Apprise is imported when it is first needed, not with this module: importing it costs the
daemon about 17 MB, and its first URL loads every one of its plugins (another 17 MB, paho
among them). Checking the config's target URLs (check_target_urls) needs those plugins, so
a process that has not loaded Apprise yet checks them in a short-lived child process; the
daemon then loads Apprise at its first delivery.
"""

from __future__ import annotations

import enum
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

CONSOLE_SCHEMA = "console"
ALERT_KEY_HEADER = "X-Watcher-Alert-Key"
THREAD_DOMAIN = "watcher"  # right-hand side of the story's References id
_EMAIL_SCHEMES = frozenset({"mailto", "mailtos"})
_HEADER_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
_NTFY_SCHEMES = frozenset({"ntfy", "ntfys"})
CHECK_TIMEOUT = 120.0  # seconds for the child process that checks target URLs
_console_lock = threading.Lock()
_console_stream: list[TextIO | None] = [None]  # None: the current sys.stdout
_apprise_lock = threading.Lock()
_apprise_ready: list[bool] = [False]  # Apprise imported and console:// registered
_checked: dict[str, str | None] = {}  # target URL -> why Apprise cannot use it (None: it can)
_CHECKED_MAX = 1024
_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from watcher.notify import check_urls_from_stdin; check_urls_from_stdin()"
)
log = logging.getLogger(__name__)


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


def _print_to_console(body: str, title: str, *args: Any, **kwargs: Any) -> bool:
    stream = _console_stream[0] or sys.stdout
    with _console_lock:
        stream.write(f"{title}\n{body}\n\n" if title else f"{body}\n\n")
        stream.flush()
    return True


def set_console_stream(stream: TextIO | None) -> None:
    """Where console:// prints (None: standard output)."""
    _console_stream[0] = stream


def _use_apprise() -> None:
    """Import Apprise and register console:// with it, once per process."""
    with _apprise_lock:
        if _apprise_ready[0]:
            return
        from apprise.decorators import notify as apprise_plugin

        register = apprise_plugin(on=CONSOLE_SCHEMA, name="watcher console")  # type: ignore[no-untyped-call]
        register(_print_to_console)
        _apprise_ready[0] = True


def check_target_url(url: str) -> str | None:
    """Why Apprise cannot use `url`, or None when it can."""
    return check_target_urls([url])[url]


def check_target_urls(urls: Iterable[str]) -> dict[str, str | None]:
    """Why Apprise cannot use each of `urls` (None: it can), asking Apprise itself.

    In this process when it has loaded Apprise already (it has delivered), else in a child
    process, so that a daemon that has not delivered yet does not hold Apprise's plugins.
    Answers are remembered: a reload with the same URLs asks nobody."""
    wanted = list(dict.fromkeys(urls))
    answers: dict[str, str | None] = {}
    ask: list[str] = []
    for url in wanted:
        if "://" not in url:
            answers[url] = f"{url!r} is not a URL"
        elif url in _checked:
            answers[url] = _checked[url]
        else:
            ask.append(url)
    if ask:
        found = _check_here(ask) if _apprise_ready[0] else _check_in_child(ask)
        if len(_checked) + len(found) > _CHECKED_MAX:
            _checked.clear()
        _checked.update(found)
        answers.update(found)
    return {url: answers[url] for url in wanted}


def _check_here(urls: list[str]) -> dict[str, str | None]:
    _use_apprise()
    import apprise

    answers: dict[str, str | None] = {}
    for url in urls:
        answers[url] = None
        if apprise.Apprise.instantiate(url) is None:
            schema = url.split("://", 1)[0]
            answers[url] = (
                f"Apprise cannot use this {schema}:// URL (unknown service or missing parts)"
            )
    return answers


def _check_in_child(urls: list[str]) -> dict[str, str | None]:
    """_check_here in a child process of this Python and this watcher package (the URLs,
    secrets included, go through its stdin). If the child cannot answer, the URLs are
    checked here after all."""
    source_root = str(Path(__file__).resolve().parent.parent)
    answers: object = None
    why = "an unexpected answer"
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, source_root],
            input=json.dumps(urls),
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT,
            check=False,
        )
        if done.returncode == 0:
            answers = json.loads(done.stdout)
        else:
            why = f"exit code {done.returncode}"
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        why = type(exc).__name__
    if isinstance(answers, dict) and set(answers) == set(urls):
        return {url: None if answers[url] is None else str(answers[url]) for url in urls}
    # not the child's stderr: it may quote a URL, and URLs hold secrets
    log.warning("checking notify URLs in a child process failed (%s); checking them here", why)
    return _check_here(urls)


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
    _use_apprise()
    import apprise

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


def check_urls_from_stdin() -> None:
    """The child process of _check_in_child: a JSON list of URLs in, their answers out."""
    urls = json.load(sys.stdin)
    if not isinstance(urls, list) or not all(isinstance(url, str) for url in urls):
        sys.exit("expected a JSON list of URLs on standard input")
    json.dump(_check_here(urls), sys.stdout)
