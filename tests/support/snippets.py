"""Run a snippet of Python in a fresh interpreter that imports this checkout's watcher.

For what only a new process shows: which modules a daemon imports, what a child sees.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_snippet(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -c code args...``; fails the test unless it exits 0."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        check=False,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done
