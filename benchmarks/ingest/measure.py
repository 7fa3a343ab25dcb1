"""What both tool processes share (standard library only: the reader side runs in another
venv): talking to the feed server, peak memory, and the result format."""

from __future__ import annotations

import gc
import json
import os
import resource
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any


def control(server: str, action: str) -> Any:
    """POST /_control/<action>, or GET /_stats when action is "stats"."""
    if action == "stats":
        with urllib.request.urlopen(f"{server}/_stats", timeout=10) as response:
            return json.load(response)
    request = urllib.request.Request(f"{server}/_control/{action}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def self_peak_mb() -> float:
    """This process's peak resident set size so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reaped_children_peak_mb() -> float:
    """The largest peak RSS of any child (and its reaped descendants) this process waited for."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def live_descendants_peak_mb() -> tuple[float, int]:
    """The sum of the peak RSS (VmHWM) of every live descendant process, and their number.

    Summing peaks over-counts: the processes did not necessarily peak at the same time, and
    pages shared copy-on-write with their parent count once per process.
    """
    found = _descendants()
    return sum(_status_mb(pid, "VmHWM") for pid in found), len(found)


def tree_pss_mb(descendants: list[int] | None = None) -> float:
    """This process's and its descendants' proportional set size now (shared pages split)."""
    total = 0.0
    for pid in [os.getpid(), *(_descendants() if descendants is None else descendants)]:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) / 1024 for line in lines if line.startswith("Pss:"))
    return total


def tree_breakdown() -> list[dict[str, Any]]:
    """Per process of this tree: pid, its command line (shortened), peak RSS and PSS now."""
    rows = []
    for pid in [os.getpid(), *_descendants()]:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        command = " ".join(part.decode(errors="replace") for part in argv if part)
        pss = sum(int(line.split()[1]) / 1024 for line in rollup if line.startswith("Pss:"))
        hwm = _status_mb(pid, "VmHWM")
        rows.append({"pid": pid, "command": command[-90:], "hwm_mb": hwm, "pss_mb": pss})
    return rows


# Reading smaps_rollup is not free: every 50 ms, the sampler of watcher's tree used 0.3-0.5
# CPU s during round 1 (in the tool process, on the cores the tool uses).
DEFAULT_PSS_INTERVAL = 0.05
PSS_INTERVAL_VARIABLE = "INGEST_PSS_INTERVAL"


class PssSampler:
    """A thread that reads the PSS of this process tree every ``interval`` seconds (from
    /proc/<pid>/smaps_rollup) and keeps the peak: the peak so far and the peak since the last
    ``round_peak()``. PSS splits each shared page between the processes that map it, so the
    sum over the tree counts every page once. The list of descendants is refreshed every
    ``rescan`` seconds (scanning /proc costs more than reading the rollups)."""

    def __init__(self, interval: float | None = None, rescan: float = 0.5) -> None:
        if interval is None:  # run.py --pss-interval
            interval = float(os.environ.get(PSS_INTERVAL_VARIABLE) or DEFAULT_PSS_INTERVAL)
        self.interval, self.rescan = interval, rescan
        self.peak_mb = 0.0
        self.samples = 0
        self._round_mb = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)

    def start(self) -> PssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def round_peak(self) -> float:
        """The peak since the previous call (sampled once more now), and start a new round."""
        self._sample(_descendants())
        with self._lock:
            peak, self._round_mb = self._round_mb, 0.0
        return peak

    def _run(self) -> None:
        found, scanned = _descendants(), time.monotonic()
        while not self._stop.wait(self.interval):
            if time.monotonic() - scanned > self.rescan:
                found, scanned = _descendants(), time.monotonic()
            self._sample(found)

    def _sample(self, descendants: list[int]) -> None:
        now = tree_pss_mb(descendants)
        with self._lock:
            self.samples += 1
            self.peak_mb = max(self.peak_mb, now)
            self._round_mb = max(self._round_mb, now)


def _status_mb(pid: int, field: str) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _descendants() -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    wanted, found = {os.getpid()}, []
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in wanted and pid not in wanted:
                wanted.add(pid)
                found.append(pid)
                changed = True
    return found


def tree_cpu_s() -> float:
    """CPU time (user + system) used so far by this process and its live descendants."""
    total = 0.0
    for pid in [os.getpid(), *_descendants()]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def thread_cpu_s() -> dict[str, float]:
    """CPU time (user + system) of each live thread of this process so far, by Python thread
    name (the OS thread id for threads Python does not know)."""
    names = {thread.native_id: thread.name for thread in threading.enumerate()}
    found: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(task.name)) or f"tid-{task.name}"
        found[name] = found.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICKS
    return found


def process_cpu_s() -> dict[int, float]:
    """CPU time (user + system) so far of this process and of each live descendant, by pid."""
    found: dict[int, float] = {}
    for pid in [os.getpid(), *_descendants()]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
    return found


def cpu_since(before: dict[Any, float], after: dict[Any, float]) -> dict[str, float]:
    """What each thread or process used between two readings (those that used any)."""
    spent = {str(key): round(value - before.get(key, 0.0), 3) for key, value in after.items()}
    return {key: value for key, value in spent.items() if value > 0}


class GcClock:
    """CPU time this process spends in the cyclic garbage collector, by thread and
    generation ("MainThread/g2"), from gc.callbacks; ``take()`` returns it and starts over."""

    def __init__(self) -> None:
        self._started: dict[int, float] = {}
        self._spent: dict[str, list[float]] = {}  # key -> [collections, seconds]
        self._lock = threading.Lock()
        gc.callbacks.append(self._callback)

    def take(self) -> dict[str, list[float]]:
        with self._lock:
            spent, self._spent = self._spent, {}
        return {key: [count, round(seconds, 4)] for key, (count, seconds) in spent.items()}

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        ident = threading.get_ident()
        if phase == "start":
            self._started[ident] = time.thread_time()
            return
        started = self._started.pop(ident, None)
        if started is None:
            return
        key = f"{threading.current_thread().name}/g{info['generation']}"
        with self._lock:
            entry = self._spent.setdefault(key, [0, 0.0])
            entry[0] += 1
            entry[1] += time.thread_time() - started


def machine_busy_s() -> float:
    """CPU time used by everything on the machine so far (all cores, from /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


_TICKS = os.sysconf("SC_CLK_TCK")


def write_result(path: str, result: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(result, indent=2))
