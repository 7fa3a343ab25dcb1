"""What a parser process imports: the parser, not the daemon's libraries (issue 5).

Workers import the main module again (multiprocessing does so for forkserver and spawn).
Under the daemon the main module is the `watcher` console script, which imports watcher.cli,
so these tests run a script that does what the console script does and look at a real
worker's sys.modules.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.parsers import loaded_modules
from watcher.parse_pool import ParsePool

ROOT = Path(__file__).resolve().parents[2]
DAEMON_ONLY = frozenset(
    {"apprise", "alembic", "sqlalchemy", "sqlmodel", "jinja2", "prometheus_client", "paho", "httpx"}
)

# The console script (.venv/bin/watcher) imports `main` from watcher.cli at module level and
# calls it under the __main__ guard; here the guarded part starts a pool instead.
CONSOLE_SCRIPT_LIKE = """\
import sys
from watcher.cli import main

if __name__ == "__main__":
    from tests.support.parsers import loaded_modules
    from watcher.parse_pool import ParsePool

    with ParsePool(workers=1, inline_below=0, parser=loaded_modules) as pool:
        print(pool.parse(b"modules").title)
"""


def top_level(modules: str) -> set[str]:
    return {name.partition(".")[0] for name in modules.split()}


def test_a_worker_under_the_watcher_command_imports_none_of_the_daemon_libraries(
    tmp_path: Path,
) -> None:
    script = tmp_path / "watcher_like.py"
    script.write_text(CONSOLE_SCRIPT_LIKE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    done = subprocess.run(
        [sys.executable, str(script)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    modules = done.stdout.split()
    assert "watcher.cli" in modules  # the worker did import the main module again
    assert "watcher.prepare" in modules  # preloaded by the forkserver
    assert not top_level(done.stdout) & DAEMON_ONLY
    assert not top_level(done.stdout) & {"typer", "click", "rich"}  # the commands' libraries


def test_a_worker_of_this_process_imports_none_of_the_daemon_libraries() -> None:
    with ParsePool(workers=1, inline_below=0, parser=loaded_modules) as pool:
        modules = pool.parse(b"modules").title

    assert "watcher.prepare" in modules.split()
    assert not top_level(modules) & DAEMON_ONLY
