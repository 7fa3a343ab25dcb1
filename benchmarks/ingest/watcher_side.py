"""One watcher run of the ingest benchmark (project venv): three timed polls of every feed.

Run by run.py: python watcher_side.py WATCHER_SRC CONFIG SERVER_URL WARM_BODY OUT_JSON
(WATCHER_SRC: the checkout whose watcher package is measured.)
Each round is ``Watcher.poll(every_feed=True)``: fetch, parse (in the process pool), dedup,
store, match and enqueue alerts. Delivery is not part of it: poll() only queues alerts.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, sys.argv[1])

from measure import (  # noqa: E402
    GcClock,
    PssSampler,
    control,
    cpu_since,
    live_descendants_peak_mb,
    machine_busy_s,
    process_cpu_s,
    reaped_children_peak_mb,
    self_peak_mb,
    thread_cpu_s,
    tree_breakdown,
    tree_cpu_s,
    tree_pss_mb,
    write_result,
)

# What the `watcher` console script imports at module level: the parser processes import this
# file again as their main module, as they import the console script under the daemon.
import watcher.cli  # noqa: E402, F401


def main() -> None:
    from watcher.config import load_config
    from watcher.service import Watcher

    sampler = PssSampler().start()
    collector = GcClock()
    config_path, server, warm_body, out = sys.argv[2:6]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result: dict[str, Any] = {"tool": "watcher", "rounds": [], "source": sys.argv[1]}
    result["package"] = str(Path(sys.modules["watcher"].__file__ or "").parent)

    started = time.perf_counter()
    config = load_config(config_path)
    watcher = Watcher(config)
    result["setup_s"] = time.perf_counter() - started
    result["rules"] = len(watcher.rules.rules)
    result["feeds"] = len(config.feeds)

    # Start the parser processes before timing: the daemon starts them once, at its first
    # poll; a body over the inline threshold goes to the pool.
    started = time.perf_counter()
    body = Path(warm_body).read_bytes()
    warm = [watcher.parser.submit(body, {}) for _ in range(os.cpu_count() or 1)]
    for future in warm:
        future.result()
    result["pool_start_s"] = time.perf_counter() - started
    result["before_rounds_self_mb"] = self_peak_mb()

    for number in (1, 2, 3):
        if number == 3:
            control(server, "generation/2")
        control(server, "reset-stats")
        threads_before, processes_before = thread_cpu_s(), process_cpu_s()
        collector.take()
        cpu, busy = tree_cpu_s(), machine_busy_s()
        started = time.perf_counter()
        outcomes = watcher.poll(every_feed=True)
        wall = time.perf_counter() - started
        cpu, busy = tree_cpu_s() - cpu, machine_busy_s() - busy
        threads = cpu_since(threads_before, thread_cpu_s())
        processes = cpu_since(processes_before, process_cpu_s())
        collections = collector.take()
        children_mb, children = live_descendants_peak_mb()
        errors = [f"{outcome.feed}: {outcome.error}" for outcome in outcomes if outcome.error]
        result["rounds"].append(
            {
                "round": number,
                "wall_s": wall,
                "cpu_s": cpu,
                "machine_busy_s": busy,
                "thread_cpu_s": threads,  # this process's threads, by name
                "process_cpu_s": processes,  # this process and its descendants, by pid
                "gc_s": collections,  # thread/generation -> [collections, CPU s in them]
                "polled": len(outcomes),
                "not_modified": sum(outcome.not_modified for outcome in outcomes),
                "new_entries": sum(outcome.new for outcome in outcomes),
                "alerts": sum(outcome.alerts for outcome in outcomes),
                "errors": len(errors),
                "first_errors": errors[:3],
                "server": control(server, "stats"),
                "self_peak_mb": self_peak_mb(),
                "children_peak_mb": children_mb,
                "children": children,
                "pss_now_mb": tree_pss_mb(),
                "pss_round_peak_mb": sampler.round_peak(),
                "pss_peak_mb": sampler.peak_mb,
                "processes": tree_breakdown(),
            }
        )
    watcher.close()
    sampler.stop()
    result["pss_samples"] = sampler.samples
    result["reaped_children_peak_mb"] = reaped_children_peak_mb()
    database = config.store_url.removeprefix("sqlite:///")
    result["db_mb"] = sum(
        file.stat().st_size for file in Path(database).parent.glob(Path(database).name + "*")
    ) / (1024 * 1024)
    write_result(out, result)


if __name__ == "__main__":
    main()
