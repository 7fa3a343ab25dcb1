"""The systemd notify protocol (sd_notify): readiness, status line, watchdog heartbeats.

Without $NOTIFY_SOCKET (not run by systemd, or Type=simple) every call is a no-op.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable


def notify(*assignments: str) -> bool:
    """Send e.g. "READY=1", "STATUS=…", "WATCHDOG=1" to systemd. True if it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(assignments).encode("utf-8"))
    except OSError:
        return False
    return True


def watchdog_period() -> float | None:
    """Seconds between heartbeats systemd expects (half its WatchdogSec), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2


class Heartbeat:
    """Sends WATCHDOG=1 at most once per period; call beat() from the work loop."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.period = watchdog_period()
        self.clock = clock
        self.last = float("-inf")

    def beat(self) -> None:
        if self.period is None:
            return
        now = self.clock()
        if now - self.last >= self.period:
            self.last = now
            notify("WATCHDOG=1")
