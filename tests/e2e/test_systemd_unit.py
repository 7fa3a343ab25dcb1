"""The shipped systemd unit is valid for systemd (checked when systemd-analyze exists)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "watcher.service"


def test_unit_runs_the_check_then_the_daemon_from_the_documented_paths() -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert "ExecStartPre=/opt/watcher/.venv/bin/watcher check" in text
    assert "ExecStart=/opt/watcher/.venv/bin/watcher run" in text
    assert "Environment=WATCHER_CONFIG=/etc/watcher/watcher.yaml" in text
    assert "Restart=on-failure" in text
    assert "Type=notify" in text
    assert "WatchdogSec=" in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_unit_sandboxing_rates_2_or_better() -> None:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 2.0, result.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    watcher_bin = Path(sys.executable).with_name("watcher")
    assert watcher_bin.exists()
    unit = tmp_path / "watcher.service"
    unit.write_text(
        UNIT.read_text(encoding="utf-8").replace(
            "/opt/watcher/.venv/bin/watcher", str(watcher_bin)
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
