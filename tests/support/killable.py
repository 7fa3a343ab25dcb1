"""Run the `watcher` command, stopping dead at a named point of the poll, to be SIGKILLed.

    python -m tests.support.killable POINT run --once --config watcher.yaml

The real code runs unchanged; at POINT (the first time it is reached) this prints
"PAUSED POINT" on standard output and waits forever, holding whatever it holds then (an
open transaction, a claimed feed or alert), until the test kills the process.
"""

from __future__ import annotations

import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

from watcher import poller
from watcher.cli import main
from watcher.store import Store, Transaction

# Each point: the object, its attribute, and whether to stop before or after the call.
POINTS: dict[str, tuple[Any, str, str]] = {
    "entries added": (Transaction, "add_entries", "after"),  # inside the poll's transaction
    "alerts enqueued": (Transaction, "enqueue_alerts", "after"),  # inside it, alerts queued
    "poll recorded": (Transaction, "record_poll", "after"),  # its last write, not committed
    "poll committed": (poller, "ingest", "after"),  # committed, nothing delivered yet
    "alert claimed": (Store, "claim_due_alerts", "after"),  # leased, not sent
    "first alert recorded": (Store, "mark_sent", "after"),  # one sent and recorded
}


def pause(point: str) -> None:
    print(f"PAUSED {point}", flush=True)
    threading.Event().wait()


def stop_at(point: str) -> None:
    owner, name, when = POINTS[point]
    original: Callable[..., Any] = getattr(owner, name)
    reached = threading.Event()

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when == "before" and not reached.is_set():
            reached.set()
            pause(point)
        result = original(*args, **kwargs)
        if when == "after" and not reached.is_set():
            reached.set()
            pause(point)
        return result

    setattr(owner, name, wrapper)


if __name__ == "__main__":
    stop_at(sys.argv[1])
    sys.argv = ["watcher", *sys.argv[2:]]
    main()
