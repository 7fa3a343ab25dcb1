"""Real receivers for alerts, on 127.0.0.1: an SMTP server (aiosmtpd) and a webhook server."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

WAIT_SECONDS = 10.0


class _Collector:
    """A thread-safe list whose readers can wait for it to reach a length."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._changed = threading.Condition()

    def append(self, item: Any) -> None:
        with self._changed:
            self._items.append(item)
            self._changed.notify_all()

    def snapshot(self) -> list[Any]:
        with self._changed:
            return list(self._items)

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Any]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._items) >= count, timeout):
                raise AssertionError(f"expected {count} items, got {len(self._items)}")
            return list(self._items)


class _MailHandler:
    def __init__(self, collector: _Collector) -> None:
        self.collector = collector

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.collector.append(message)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps every message it receives."""

    def __init__(self) -> None:
        self._messages = _Collector()
        self._loop = asyncio.new_event_loop()
        handler = _MailHandler(self._messages)
        self._server = self._loop.run_until_complete(
            self._loop.create_server(lambda: SMTP(handler), "127.0.0.1", 0)
        )
        self.port: int = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def apprise_url(self, to: str = "reader@example.org") -> str:
        return (
            f"mailto://watcher@127.0.0.1:{self.port}"
            f"?smtp=127.0.0.1&mode=insecure&from=watcher@example.org&to={to}"
        )

    @property
    def messages(self) -> list[EmailMessage]:
        return self._messages.snapshot()

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[EmailMessage]:
        return self._messages.wait_for(count, timeout)

    def close(self) -> None:
        async def shut_down() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shut_down(), self._loop).result(WAIT_SECONDS)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(WAIT_SECONDS)
        self._loop.close()


@dataclass(frozen=True)
class Hook:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookSink:
    """An HTTP server on 127.0.0.1 that records POSTs and answers `status` (settable)."""

    def __init__(self) -> None:
        self.status = 200
        self._hooks = _Collector()
        self._attempts = _Collector()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                hook = Hook(self.path, dict(self.headers.items()), self.rfile.read(length))
                status = sink.status
                sink._attempts.append(hook)
                if status < 300:
                    sink._hooks.append(hook)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def apprise_url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    @property
    def delivered(self) -> list[Hook]:
        """The requests answered with success."""
        return self._hooks.snapshot()

    @property
    def attempts(self) -> list[Hook]:
        """Every request, answered with success or not."""
        return self._attempts.snapshot()

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Hook]:
        return self._hooks.wait_for(count, timeout)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT_SECONDS)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    yield sink
    sink.close()
