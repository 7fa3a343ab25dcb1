"""Logging: one line per event, readable text for a terminal or JSON for the journal,
with secrets redacted from every message, field and traceback.

The only module that imports structlog. The code base keeps logging through the stdlib
(`logging.getLogger(__name__).info("… %s", x)`); structlog's ProcessorFormatter renders.

Redaction, applied until nothing changes (so it is idempotent):

1. Configured secrets (`set_secrets`: the expanded Apprise target URLs and the store URL).
   A secret URL whose scheme never carries credentials (console://, sqlite://) is ignored.
   For any other secret URL `scheme://rest`:
   - every URL in the text with that scheme becomes `scheme://***`, unless the scheme is
     http, https or file (feed URLs use those, so they are masked only as listed below);
   - the URL itself becomes `scheme://***`, and `rest` alone (8+ characters) becomes `***`;
   - its token-like parts become `***` wherever they appear: the user, the password, a host
     that is not a DNS name or IP (Apprise puts tokens there: slack://TokenA/…), each path
     segment, each query value and the fragment, raw and percent-decoded. Token-like means
     6+ characters with a digit, or 20+ characters: shorter or word-like parts ("news",
     "alerts") would garble ordinary messages and are masked only in context (above, and
     by rules 2 and 3).
   A secret that is not a URL (4+ characters) becomes `***` wherever it appears.
2. The password of any URL: `scheme://user:password@host` -> `scheme://user:***@host`.
3. Credential parameters anywhere: `password=…`, `token=…`, `apikey=…`, `secret=…` (and names
   containing them, like access_token or client_secret; also pass and pwd) keep their name
   and lose their value; an extra field with such a name is masked whole.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import parse_qsl, unquote, urlsplit

import structlog
from structlog.stdlib import ProcessorFormatter
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["auto", "text", "json"]

MASK = "***"
NOISY_LOGGERS = ("alembic", "apscheduler", "apprise", "httpx", "httpcore")

_NO_CREDENTIALS = frozenset({"console", "sqlite"})  # scheme before any "+driver"
_COMMON_SCHEMES = frozenset({"http", "https", "file"})
_MIN_LITERAL = 4
_MIN_REST = 8
_URL_TAIL = r"[^\s\"'<>]+"
_URL_SECRET = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", re.DOTALL)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#:]*):[^\s/?#]*@")
_KEY_NAME = (
    r"[A-Za-z0-9_.\-]*(?:password|passwd|passphrase|token|secret|api[_\-]?key"
    r"|access[_\-]?key|private[_\-]?key|credential)[A-Za-z0-9_.\-]*"
    r"|pass|pwd"
)
_SENSITIVE_KEY = re.compile(rf"(?:{_KEY_NAME})", re.IGNORECASE)
_KEY_VALUE = re.compile(
    rf"(?<![A-Za-z0-9_.\-])((?:{_KEY_NAME})=)(?:\"[^\"]*\"|'[^']*'|[^\s&#]+)", re.IGNORECASE
)
_MAX_PASSES = 5


@dataclass(frozen=True, slots=True)
class Redactor:
    """The redaction rules compiled for one set of secrets; call it on text."""

    schemes: re.Pattern[str] | None
    fragments: re.Pattern[str] | None
    replacements: Mapping[str, str]

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Redactor:
        schemes: set[str] = set()
        replacements: dict[str, str] = {}
        for secret in secrets:
            _collect(secret.strip(), schemes, replacements)
        scheme_re = None
        if schemes:
            names = "|".join(re.escape(s) for s in sorted(schemes, key=len, reverse=True))
            scheme_re = re.compile(rf"(?<![A-Za-z0-9+.\-])({names})://{_URL_TAIL}", re.IGNORECASE)
        fragment_re = None
        if replacements:
            # longest first: a secret URL wins over its own parts and over shorter secrets
            ordered = sorted(replacements, key=len, reverse=True)
            fragment_re = re.compile("|".join(re.escape(f) for f in ordered))
        return cls(scheme_re, fragment_re, replacements)

    def __call__(self, text: str) -> str:
        for _ in range(_MAX_PASSES):
            redacted = self._once(text)
            if redacted == text:
                break
            text = redacted
        return text

    def _once(self, text: str) -> str:
        if self.schemes is not None:
            text = self.schemes.sub(lambda m: f"{m.group(1)}://{MASK}", text)
        if self.fragments is not None:
            text = self.fragments.sub(lambda m: self.replacements[m.group(0)], text)
        text = _KEY_VALUE.sub(rf"\1{MASK}", text)
        return _USERINFO.sub(rf"\1:{MASK}@", text)


def _collect(secret: str, schemes: set[str], replacements: dict[str, str]) -> None:
    url = _URL_SECRET.match(secret)
    if url is None:
        if len(secret) >= _MIN_LITERAL:
            replacements[secret] = MASK
        return
    scheme, rest = url.group(1).lower(), url.group(2)
    if scheme.split("+")[0] in _NO_CREDENTIALS or not rest:
        return
    if scheme not in _COMMON_SCHEMES:
        schemes.add(scheme)
    replacements[secret] = f"{url.group(1)}://{MASK}"
    if len(rest) >= _MIN_REST:
        replacements.setdefault(rest, MASK)
    for part in _url_parts(secret):
        if _token_like(part):
            replacements.setdefault(part, MASK)


def _url_parts(url: str) -> list[str]:
    try:
        split = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host: fall back to plain splitting
        return re.split(r"[/:@?&=#;,]", url.partition("://")[2])
    userinfo, _, hostport = split.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    parts = [user, password]
    parts += [p for p in hostport.split(":") if "." not in p]  # a DNS name or IPv4 is no token
    parts += split.path.split("/")
    parts += [value for _, value in parse_qsl(split.query, keep_blank_values=True)]
    parts.append(split.fragment)
    return parts + [unquote(p) for p in parts]


def _token_like(part: str) -> bool:
    return len(part) >= 20 or (len(part) >= 6 and any(c.isdigit() for c in part))


@functools.lru_cache(maxsize=16)
def _redactor(secrets: tuple[str, ...]) -> Redactor:
    return Redactor.of(secrets)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with URL passwords, credential parameters and the given secrets masked."""
    return _redactor(tuple(sorted(set(secrets))))(text)


class _State:
    """What setup_logging installed; swapped whole, so a record sees one set of secrets."""

    redactor = Redactor.of(())
    handler: logging.Handler | None = None
    lock = threading.Lock()


def set_secrets(secrets: Iterable[str]) -> None:
    """Replace the secrets redacted from log output (after a config reload, say)."""
    _State.redactor = Redactor.of(secrets)


def resolve_format(
    fmt: LogFormat, environ: Mapping[str, str] | None = None
) -> Literal["text", "json"]:
    """The format "auto" stands for: JSON under systemd (it sets JOURNAL_STREAM), else text."""
    if fmt != "auto":
        return fmt
    env = os.environ if environ is None else environ
    return "json" if env.get("JOURNAL_STREAM") else "text"


def setup_logging(
    *,
    fmt: LogFormat,
    verbose: bool,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr) in `fmt`, redacted.

    Calling it again replaces the handler it installed before; other handlers stay.
    """
    set_secrets(secrets)
    chosen = resolve_format(fmt)
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(
        ProcessorFormatter(
            foreign_pre_chain=[functools.partial(_record_fields, utc=chosen == "json")],
            processors=[
                ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                _redact_event,
                _render_json if chosen == "json" else _render_text,
            ],
        )
    )
    root = logging.getLogger()
    with _State.lock:
        if _State.handler is not None:
            root.removeHandler(_State.handler)
        root.addHandler(handler)
        _State.handler = handler
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    return handler


# LogRecord attributes that are not `extra=` fields
_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _record_fields(_: WrappedLogger, __: str, event_dict: EventDict, *, utc: bool) -> EventDict:
    """timestamp, level, logger, event, then the record's extra fields, in that order."""
    record: logging.LogRecord = event_dict["_record"]
    created = datetime.fromtimestamp(record.created, UTC)
    if utc:
        timestamp = created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    else:
        timestamp = created.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    fields: EventDict = {
        "timestamp": timestamp,
        "level": record.levelname.lower(),
        "logger": record.name,
        "event": event_dict.pop("event"),
    }
    fields.update((k, v) for k, v in record.__dict__.items() if k not in _RECORD_ATTRS)
    if "stack_info" in event_dict:
        event_dict["stack"] = event_dict.pop("stack_info")
    fields.update(event_dict)
    return fields


def _redact_event(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    redactor = _State.redactor
    return {key: _redact_field(key, value, redactor) for key, value in event_dict.items()}


def _redact_field(key: str, value: Any, redactor: Redactor) -> Any:
    if value is not None and _SENSITIVE_KEY.fullmatch(key):
        return MASK
    return _redact_value(value, redactor)


def _redact_value(value: Any, redactor: Redactor) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, Mapping):
        return {str(k): _redact_field(str(k), v, redactor) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v, redactor) for v in value]
    return redactor(str(value))


_render_json: Processor = structlog.processors.JSONRenderer(ensure_ascii=False)


def _render_text(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    """`2025-11-25 10:00:00 INFO    watcher.service: message key=value`, then any traceback."""
    fields = dict(event_dict)
    head = (
        f"{fields.pop('timestamp')} {str(fields.pop('level')).upper():<7} "
        f"{fields.pop('logger')}: {fields.pop('event')}"
    )
    tails = [str(fields.pop(key)).rstrip("\n") for key in ("exception", "stack") if key in fields]
    pairs = " ".join(f"{key}={_text_value(value)}" for key, value in fields.items())
    return "\n".join([f"{head} {pairs}" if pairs else head, *tails])


def _text_value(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() or c in "\"'=" for c in value):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)
