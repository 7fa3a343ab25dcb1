"""One reader (lemon24/reader) run of the ingest benchmark, in reader's own venv.

Run by run.py: python reader_side.py DB SERVER_URL URLS_FILE WORKERS OUT_JSON
Each round is ``reader.update_feeds(scheduled=False, workers=WORKERS)``: fetch, parse,
dedup and store. ``scheduled=False`` makes reader fetch every feed each round, as watcher's
``poll(every_feed=True)`` does (by default reader skips feeds updated within the hour).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import (
    PssSampler,
    control,
    live_descendants_peak_mb,
    machine_busy_s,
    self_peak_mb,
    tree_cpu_s,
    tree_pss_mb,
    write_result,
)
from reader import make_reader  # type: ignore[import-not-found,unused-ignore]


def main() -> None:
    sampler = PssSampler().start()
    database, server, urls_file, workers_arg, out = sys.argv[1:6]
    workers = int(workers_arg)
    urls = Path(urls_file).read_text().split()
    result: dict[str, Any] = {"tool": "reader", "workers": workers, "rounds": []}

    started = time.perf_counter()
    reader = make_reader(database)
    for url in urls:
        reader.add_feed(url)
    result["setup_s"] = time.perf_counter() - started
    result["before_rounds_self_mb"] = self_peak_mb()

    for number in (1, 2, 3):
        if number == 3:
            control(server, "generation/2")
        control(server, "reset-stats")
        before = reader.get_entry_counts().total or 0
        cpu, busy = tree_cpu_s(), machine_busy_s()
        started = time.perf_counter()
        reader.update_feeds(scheduled=False, workers=workers)
        wall = time.perf_counter() - started
        cpu, busy = tree_cpu_s() - cpu, machine_busy_s() - busy
        children_mb, children = live_descendants_peak_mb()
        broken = sum(1 for feed in reader.get_feeds() if feed.last_exception)
        result["rounds"].append(
            {
                "round": number,
                "wall_s": wall,
                "cpu_s": cpu,
                "machine_busy_s": busy,
                "new_entries": (reader.get_entry_counts().total or 0) - before,
                "errors": broken,
                "server": control(server, "stats"),
                "self_peak_mb": self_peak_mb(),
                "children_peak_mb": children_mb,
                "children": children,
                "pss_now_mb": tree_pss_mb(),
                "pss_round_peak_mb": sampler.round_peak(),
                "pss_peak_mb": sampler.peak_mb,
            }
        )
    reader.close()
    sampler.stop()
    result["pss_samples"] = sampler.samples
    result["db_mb"] = sum(
        file.stat().st_size for file in Path(database).parent.glob(Path(database).name + "*")
    ) / (1024 * 1024)
    write_result(out, result)


if __name__ == "__main__":
    main()
