"""Log formats (text and JSON) and the redaction of secrets from everything logged."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from watcher.logs import (
    MASK,
    NOISY_LOGGERS,
    LogFormat,
    redact,
    resolve_format,
    set_secrets,
    setup_logging,
)

MAIL = "mailtos://alerts:hunter2@smtp.example.org?to=x"
SLACK = "slack://T1/B2/C3/#news"
STORE = "postgresql+psycopg://u:pw@db/w"
TELEGRAM = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567"
DISCORD = "https://discord.com/api/webhooks/1234567890/Zq9x-7yTokenPartLongEnough"
SECRETS = (MAIL, SLACK, STORE, TELEGRAM, DISCORD, "console://", "sqlite:///var/lib/w.db")

# what must never reach the output, whatever the format
LEAKS = (
    "hunter2",
    "T1/B2",
    "B2/C3",
    ":pw@",
    "u:pw",
    "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    "1001234567",
    "Zq9x-7yTokenPartLongEnough",
)

Capture = Callable[..., io.StringIO]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """setup_logging onto a StringIO; the root logger is put back afterwards."""
    root = logging.getLogger()
    level = root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    installed: list[logging.Handler] = []

    def install(
        fmt: LogFormat = "text", verbose: bool = False, secrets: tuple[str, ...] = SECRETS
    ) -> io.StringIO:
        stream = io.StringIO()
        installed.append(setup_logging(fmt=fmt, verbose=verbose, secrets=secrets, stream=stream))
        return stream

    yield install
    for handler in installed:
        root.removeHandler(handler)
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)
    set_secrets(())


log = logging.getLogger("watcher.test")

TEXT_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?P<level>[A-Z]+) +(?P<logger>[\w.]+): (?P<rest>.*)$"
)


def test_text_is_one_readable_line(capture: Capture) -> None:
    out = capture("text")
    log.info("polled %s: %d new", "example", 3, extra={"feed": "example", "took": 0.25})

    line = out.getvalue().rstrip("\n")
    assert "\n" not in line
    m = TEXT_LINE.match(line)
    assert m is not None, line
    assert (m["level"], m["logger"]) == ("INFO", "watcher.test")
    assert m["rest"] == "polled example: 3 new feed=example took=0.25"


def test_text_quotes_field_values_with_spaces(capture: Capture) -> None:
    out = capture("text")
    log.warning("x", extra={"reason": "timed out", "empty": ""})
    assert out.getvalue().rstrip().endswith('x reason="timed out" empty=""')


def test_json_is_one_object_per_line(capture: Capture) -> None:
    out = capture("json")
    log.info("polled %s", "example", extra={"feed": "example", "new": 3})
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("failed")

    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert list(first) == ["timestamp", "level", "logger", "event", "feed", "new"]
    assert first["level"] == "info"
    assert first["logger"] == "watcher.test"
    assert first["event"] == "polled example"
    assert (first["feed"], first["new"]) == ("example", 3)
    stamp = datetime.fromisoformat(first["timestamp"])
    assert first["timestamp"].endswith("Z")
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=5)
    assert second["level"] == "error"
    assert second["exception"].startswith("Traceback (most recent call last):")
    assert second["exception"].endswith("ValueError: bad\nthing")


def test_auto_is_json_under_systemd_and_text_elsewhere() -> None:
    assert resolve_format("auto", {"JOURNAL_STREAM": "8:12345"}) == "json"
    assert resolve_format("auto", {}) == "text"
    assert resolve_format("text", {"JOURNAL_STREAM": "8:12345"}) == "text"
    assert resolve_format("json", {}) == "json"


def test_auto_reads_the_environment(capture: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    out = capture("auto")
    log.info("hello")
    assert json.loads(out.getvalue())["event"] == "hello"


def test_noisy_libraries_are_quiet_unless_verbose(capture: Capture) -> None:
    out = capture(verbose=False)
    logging.getLogger("httpx").info("HTTP Request: GET")
    logging.getLogger("apprise").warning("apprise warns")
    log.debug("debug detail")
    assert "HTTP Request" not in out.getvalue()
    assert "debug detail" not in out.getvalue()
    assert "apprise warns" in out.getvalue()

    out = capture(verbose=True)
    logging.getLogger("httpx").info("HTTP Request: GET")
    log.debug("debug detail")
    assert "HTTP Request" in out.getvalue()
    assert "debug detail" in out.getvalue()


def test_setting_up_again_replaces_the_handler(capture: Capture) -> None:
    first = capture("text")
    second = capture("json")
    log.info("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


ORDINARY = (
    "polled https://example.org/feed.xml?page=2&lang=en: 12 new, 3 duplicate (200 OK)",
    "alert 17 sent: rule rust to mail",
    "feed news failed: connection refused (next try 10:15:00)",
    "mailto:someone@example.org wrote about C3 and T1",
)


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("message", ORDINARY)
def test_ordinary_messages_are_unchanged(capture: Capture, fmt: LogFormat, message: str) -> None:
    out = capture(fmt)
    log.info("%s", message)
    line = out.getvalue().rstrip("\n")
    event = json.loads(line)["event"] if fmt == "json" else line.split(": ", 1)[1]
    assert event == message


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("secret", [MAIL, SLACK, STORE, TELEGRAM, DISCORD])
def test_secrets_never_reach_the_output(capture: Capture, fmt: LogFormat, secret: str) -> None:
    out = capture(fmt)
    log.info("sending to %s", secret)
    log.info("target", extra={"url": secret, "urls": [secret], "nested": {"u": secret}})
    log.info("repr %r and dict %s", secret, {"url": secret})
    try:
        raise ConnectionError(f"cannot reach {secret}")
    except ConnectionError as exc:
        log.exception("delivery failed")
        log.error("delivery failed: %s", exc, exc_info=exc, stack_info=True)

    text = out.getvalue()
    assert "cannot reach" in text  # the traceback is there, only masked
    for leak in LEAKS:
        assert leak not in text


def test_secrets_can_be_replaced_after_a_reload(capture: Capture) -> None:
    out = capture(secrets=())
    log.info("to %s", "matrix://bot:s3cretpw@chat.example.org/!room")
    set_secrets(["discord://9876543210/AbCdEf123456"])
    log.info("to %s", "discord://9876543210/AbCdEf123456")
    log.info("token alone: AbCdEf123456")
    text = out.getvalue()
    assert "matrix://bot:***@chat.example.org/!room" in text  # the generic password rule
    assert "discord://***" in text
    assert "token alone: ***" in text
    assert "AbCdEf123456" not in text


def test_fields_named_like_credentials_are_masked(capture: Capture) -> None:
    out = capture("json")
    log.info("login", extra={"password": "letmein", "api_token": "abc", "user": "ann"})
    event = json.loads(out.getvalue())
    assert (event["password"], event["api_token"], event["user"]) == (MASK, MASK, "ann")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # configured secrets: the URL and any URL of its (non-web) scheme
        (MAIL, "mailtos://***"),
        (f"<{MAIL}>", "<mailtos://***>"),
        ("mailtos://other:pw2@mx.example.net", "mailtos://***"),
        (SLACK, "slack://***"),
        ("slack://T1/B2/C3/", "slack://***"),
        (STORE, "postgresql+psycopg://***"),
        ("POSTGRESQL+PSYCOPG://u:pw@db/w", "POSTGRESQL+PSYCOPG://***"),
        (TELEGRAM, "tgram://***"),
        (DISCORD, "https://***"),
        # ... their token-like parts on their own, raw or percent-decoded
        ("bot AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw rejected", "bot *** rejected"),
        ("chat -1001234567", "chat ***"),
        ("password hunter2?", "password ***?"),
        ("discord 1234567890/Zq9x-7yTokenPartLongEnough", "discord ***/***"),
        # ... but not their short or word-like parts, nor their hosts
        ("alerts on smtp.example.org for news", "alerts on smtp.example.org for news"),
        ("T1 B2 C3 pw u db w", "T1 B2 C3 pw u db w"),
        # http(s) URLs stay readable unless they are the secret
        ("https://discord.com/api/webhooks", "https://discord.com/api/webhooks"),
        ("http://example.org/feed", "http://example.org/feed"),
        # credential-free secrets are not secrets
        ("console:// and sqlite:///var/lib/w.db", "console:// and sqlite:///var/lib/w.db"),
        # (a) any URL's password
        ("ntfy://bob:s3cr3t@ntfy.sh/topic", "ntfy://bob:***@ntfy.sh/topic"),
        ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
        ("https://u:p@ss@host/x", "https://u:***@host/x"),
        ("https://user@host:8080/a@b", "https://user@host:8080/a@b"),
        # (c) credential parameters anywhere
        ("json://h/p?token=x&format=text", "json://h/p?token=***&format=text"),
        ("GET /x?access_token=abc#top", "GET /x?access_token=***#top"),
        ("apikey=K1 secret=S2 Password='p w' x", "apikey=*** secret=*** Password=*** x"),
        ("client_secret=zz&page=2", "client_secret=***&page=2"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text, SECRETS) == expected


def test_percent_encoded_password_is_masked_decoded_too() -> None:
    secret = "mailtos://ann:p%40ss1234@mx.example.org"
    assert redact("login p@ss1234 refused", [secret]) == "login *** refused"


def test_a_non_url_secret_is_masked_literally() -> None:
    assert redact("key ABCD-1234 used", ["ABCD-1234"]) == "key *** used"
    assert redact("a b c", ["a"]) == "a b c"  # too short to mask everywhere


# --- properties -------------------------------------------------------------------------

SECRET_PIECES = st.sampled_from(
    [*SECRETS, "hunter2", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "token=", "u:", "@", "://"]
)
URLS = st.builds(
    "{}://{}{}/{}?{}={}".format,
    st.sampled_from(["https", "slack", "mailtos", "json", "x+y"]),
    st.sampled_from(["", "u@", "u:pw@", ":@", "a:b@c@"]),
    st.sampled_from(["host", "h.example.org", "123:ABC"]),
    st.text(max_size=8),
    st.sampled_from(["token", "page", "password", "to"]),
    st.text(max_size=8),
)
ANY_TEXT = st.lists(st.one_of(st.text(max_size=12), SECRET_PIECES, URLS), max_size=8).map("".join)


@given(ANY_TEXT)
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text, SECRETS)
    assert redact(once, SECRETS) == once


@given(ANY_TEXT)
def test_known_secrets_never_survive(text: str) -> None:
    out = redact(text, SECRETS)
    for leak in ("hunter2", "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", MAIL, SLACK, STORE):
        assert leak not in out


# secret-free text: free text without "=" or "@", plus harmless URLs, addresses, parameters
PLAIN = st.text(alphabet=st.characters(exclude_characters="=@"), max_size=20)
HARMLESS = st.one_of(
    PLAIN,
    st.sampled_from(
        [
            "https://example.org/feed.xml?page=2&lang=en",
            "http://127.0.0.1:8080/a/b#c",
            "mailto:someone@example.org",
            "ann@example.org",
            "https://user@example.org/",
            "file:///etc/watcher.yaml",
            "format=markdown",
            "to=ann",
            "T1 B2 C3",
            "slack",
            "console://",
        ]
    ),
)
SECRET_FREE = st.lists(HARMLESS, max_size=8).map(" ".join)


@given(SECRET_FREE)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assume(not any(leak in text for leak in LEAKS))
    assert redact(text, SECRETS) == text
