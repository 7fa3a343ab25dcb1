"""What the daemon's own process imports before it has anything to deliver (issue 5).

Apprise (with its plugins, paho among them), Jinja2, nh3 and prometheus_client cost the
daemon about 20 MB in its own import order; it loads each when it first needs it: Apprise,
Jinja2 and nh3 at the first delivery, prometheus_client only when `metrics:` is configured.
These tests run a fresh interpreter, as the `watcher` command does, and look at its
sys.modules.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.snippets import ROOT, run_snippet

FEED = ROOT / "tests" / "data" / "rss2.xml"
LOADED_LATER = frozenset({"apprise", "paho", "jinja2", "nh3", "prometheus_client"})

# Checks the config, builds the daemon and runs one tick (poll and deliver) in a fresh
# interpreter, then prints the top-level modules it has imported, and what it delivered.
DAEMON_TICK = """\
import gc
import json
import sys

from watcher.config import load_config
from watcher.service import Watcher

with Watcher(load_config(sys.argv[1])) as daemon:
    report = daemon.tick(every_feed=True)
    modules = sorted({name.partition(".")[0] for name in sys.modules})
    print(json.dumps({"modules": modules, "new": report.new_entries,
                      "sent": report.delivery.sent, "metrics": type(daemon.metrics).__name__,
                      "frozen": gc.get_freeze_count()}))
"""


def tick_in_a_fresh_process(tmp_path: Path, config_text: str) -> dict[str, object]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "main.yaml").write_text(
        "rules:\n  - {name: none, match: zzyzxnomatch}\n", encoding="utf-8"
    )
    config = tmp_path / "watcher.yaml"
    config.write_text(config_text, encoding="utf-8")
    done = run_snippet(DAEMON_TICK, str(config))
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_daemon_without_metrics_or_deliveries_loads_neither_apprise_jinja_nor_prometheus(
    tmp_path: Path,
) -> None:
    result = tick_in_a_fresh_process(
        tmp_path,
        f"store: sqlite:///{tmp_path / 'w.db'}\n"
        f"feeds:\n  - {{name: Local, url: 'file:{FEED}'}}\n"
        "notify:\n  console: console://\n  hook: json://127.0.0.1:9/hook\n",
    )

    assert result["new"] == 3  # it did poll and store the three items
    assert result["sent"] == 0
    assert result["metrics"] == "Recorder"
    assert isinstance(result["frozen"], int)
    assert result["frozen"] > 50_000  # what it started with is left out of full collections
    modules = result["modules"]
    assert isinstance(modules, list)
    assert "sqlalchemy" in modules  # the check sees what was imported
    assert not set(modules) & LOADED_LATER


def test_a_daemon_with_metrics_loads_prometheus_client(tmp_path: Path) -> None:
    result = tick_in_a_fresh_process(
        tmp_path,
        f"store: sqlite:///{tmp_path / 'w.db'}\n"
        f"feeds:\n  - {{name: Local, url: 'file:{FEED}'}}\n"
        "notify: {console: 'console://'}\n"
        "metrics: {listen: '127.0.0.1:0'}\n",
    )

    assert result["metrics"] == "Metrics"
    modules = result["modules"]
    assert isinstance(modules, list)
    assert "prometheus_client" in modules
    assert "apprise" not in modules
