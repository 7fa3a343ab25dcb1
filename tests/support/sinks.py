"""Real receivers for alerts, on 127.0.0.1: an SMTP server (aiosmtpd), webhook servers
(generic JSON, ntfy-style, Mattermost-style chat) and an MQTT subscriber on Mosquitto."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from paho.mqtt.enums import CallbackAPIVersion

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
    def __init__(self, collector: _Collector, recipients: _Collector | None = None) -> None:
        self.collector = collector
        self.recipients = recipients

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if self.recipients is not None:  # before the message, so waiting on messages suffices
            self.recipients.append(list(envelope.rcpt_tos))
        self.collector.append(message)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps every message it receives."""

    def __init__(self, port: int = 0) -> None:
        self._messages = _Collector()
        self._recipients = _Collector()
        self._loop = asyncio.new_event_loop()
        handler = _MailHandler(self._messages, self._recipients)
        self._server = self._loop.run_until_complete(
            self._loop.create_server(lambda: SMTP(handler), "127.0.0.1", port, reuse_address=True)
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

    @property
    def recipients(self) -> list[list[str]]:
        """The SMTP envelope recipients (RCPT TO) of each message, in order."""
        return self._recipients.snapshot()

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
        # When set, each request is recorded as an attempt, then held (no answer) until the
        # event is set: a sender can be killed between "received" and "answered".
        self.hold: threading.Event | None = None
        self._hooks = _Collector()
        self._attempts = _Collector()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                hook = Hook(self.path, dict(self.headers.items()), self.rfile.read(length))
                status = sink.status
                sink._attempts.append(hook)
                hold = sink.hold
                if hold is not None:
                    hold.wait(WAIT_SECONDS)
                    return  # the sender is gone by now; no answer
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

    def wait_for_attempts(self, count: int, timeout: float = WAIT_SECONDS) -> list[Hook]:
        return self._attempts.wait_for(count, timeout)

    @property
    def attempts(self) -> list[Hook]:
        """Every request, answered with success or not."""
        return self._attempts.snapshot()

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[Hook]:
        return self._hooks.wait_for(count, timeout)

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT_SECONDS)


class NtfySink(WebhookSink):
    """A self-hosted ntfy server as Apprise sees it: JSON POSTs to the server's root."""

    def apprise_url(self, path: str = "alerts", **params: str) -> str:
        query = "&".join(f"{name}={value}" for name, value in params.items())
        return f"ntfy://127.0.0.1:{self.port}/{path}" + (f"?{query}" if query else "")


class ChatSink(WebhookSink):
    """A Mattermost incoming webhook (POST /hooks/<token>, JSON with Markdown "text").

    Apprise's Slack and Discord plugins only talk to their cloud hosts; Mattermost's takes
    any host, so it stands in for the chat services that receive Markdown.
    """

    def apprise_url(self, path: str = "watchertoken") -> str:
        return f"mmost://127.0.0.1:{self.port}/{path}"


class MqttSubscriber:
    """Subscribed to a fresh topic on the Mosquitto broker at 127.0.0.1:1883."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self.topic = f"watcher/test-{uuid.uuid4().hex}"
        self._messages = _Collector()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.connect(host, port)
        self._client.loop_start()
        if not self._subscribed.wait(WAIT_SECONDS):
            self.close()
            raise AssertionError(f"could not subscribe to {self.topic} on {host}:{port}")

    def _on_connect(self, client: mqtt.Client, userdata: Any, *args: Any) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, *args: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._messages.append(message.payload)

    def apprise_url(self) -> str:
        return f"mqtt://{self.host}:{self.port}/{self.topic}"

    @property
    def payloads(self) -> list[bytes]:
        return self._messages.snapshot()

    def wait_for(self, count: int, timeout: float = WAIT_SECONDS) -> list[bytes]:
        return self._messages.wait_for(count, timeout)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


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


@pytest.fixture
def ntfy_sink() -> Iterator[NtfySink]:
    sink = NtfySink()
    yield sink
    sink.close()


@pytest.fixture
def chat_sink() -> Iterator[ChatSink]:
    sink = ChatSink()
    yield sink
    sink.close()


@pytest.fixture
def mqtt_subscriber() -> Iterator[MqttSubscriber]:
    subscriber = MqttSubscriber()
    yield subscriber
    subscriber.close()
