"""A DNS resolver a test scripts: fetches and netguard take it instead of the system's.

Each name has a list of answers given in turn, the last one repeating: an answer is a list
of addresses, or an OSError to raise (a name that does not resolve). Unknown names do not
resolve. Nothing is ever asked of a real DNS server.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from watcher.netguard import IPAddress

Answer = Sequence[str] | OSError


def no_such_name() -> OSError:
    return socket.gaierror(socket.EAI_NONAME, "Name or service not known")


class ScriptedResolver:
    def __init__(self, answers: Mapping[str, Sequence[Answer]] | None = None) -> None:
        self._lock = threading.Lock()
        self._answers: dict[str, list[Answer]] = {
            name.lower(): list(script) for name, script in (answers or {}).items()
        }
        self.calls: list[str] = []

    def set(self, name: str, *answers: Answer) -> None:
        """From now on `name` answers these in turn (the last one repeating)."""
        with self._lock:
            self._answers[name.lower()] = list(answers)

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        with self._lock:
            self.calls.append(host)
            script = self._answers.get(host.lower())
            if not script:
                raise no_such_name()
            answer = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(answer, OSError):
            raise answer
        return [ipaddress.ip_address(address) for address in answer]


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """A guard rail for tests that script DNS answers with public addresses: any socket of
    this process connecting anywhere but loopback is stopped, and fails the test."""
    attempts: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def refuse(address: Any) -> None:
        if isinstance(address, tuple):
            host = str(address[0]).split("%", 1)[0]
            if not ipaddress.ip_address(host).is_loopback:
                attempts.append(host)
                raise ConnectionRefusedError(f"test guard: {host} is not a loopback address")

    def connect(self: socket.socket, address: Any) -> None:
        refuse(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        refuse(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield attempts
    assert attempts == [], f"connections to non-loopback addresses were attempted: {attempts}"
