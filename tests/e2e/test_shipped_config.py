"""What a newcomer sees with `make run`: the shipped config, seeds and example rules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

EXPECTED_ALERTS = {
    ("sanctions", "Trump sets Friday deadline for new sanctions on Russia and its buyers"),
    ("sanctions", "Analysis: what a Putin-Trump meeting could and could not deliver"),
    ("putin-trump-summit", "Kremlin confirms Putin–Trump summit in the coming days"),
    ("putin-trump-summit", "Analysis: what a Putin-Trump meeting could and could not deliver"),
    ("putin-trump-summit", "Putin hosts UAE president, names Emirates among helpers for summit"),
    ("putin-trump-summit", "Envoy Witkoff holds three-hour meeting with Putin in Moscow"),
    ("uae-mediation", "Putin hosts UAE president, names Emirates among helpers for summit"),
    ("strikes-on-infrastructure", "Russia strikes rail hub in Ukraine's Dnipropetrovsk region"),
    (
        "strikes-on-infrastructure",
        "Ukrainian drone strikes target landing craft and radars in Crimea",
    ),
    ("front-line", "Russia strikes rail hub in Ukraine's Dnipropetrovsk region"),
    ("front-line", "Ukrainian drone strikes target landing craft and radars in Crimea"),
    ("zelenskyy", "Zelenskyy: no deal on the war can work without Ukraine at the table"),
    ("zelenskyy", "Press review: 'Zelensky', 'Zelenskiy' or 'Зеленський'? Spelling a president"),
}
UNRELATED = [
    "Heatwave to ease this weekend",
    "Riverside jazz weekend",
    "Coastal FC sign",
    "seafood festival",
    "Folding camera drone",
    "Astronomers find signs",
    "Island council vote",
]


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """config/ and seeds/ copied with their layout, so the run writes nothing in the repo."""
    shutil.copytree(REPO / "config", tmp_path / "config", ignore=shutil.ignore_patterns("*.md"))
    shutil.copytree(REPO / "seeds", tmp_path / "seeds")
    return tmp_path / "config" / "watcher.yaml"


def run_once(config: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_seed_feed_alerts_on_matching_stories_only_and_only_once(project_copy: Path) -> None:
    first = run_once(project_copy)
    # One message per story, naming every rule that caught it: "[rule-a, rule-b] Title".
    alerted = {
        (rule, line.split("] ", 1)[1])
        for line in first.splitlines()
        if line.startswith("[")
        for rule in line[1:].split("] ", 1)[0].split(", ")
    }
    assert alerted == EXPECTED_ALERTS
    stories = {title for _, title in EXPECTED_ALERTS}
    assert sum(line.startswith("[") for line in first.splitlines()) == len(stories)
    for title in UNRELATED:
        assert title not in first
    assert "https://example.org/news/" in first

    assert run_once(project_copy) == ""  # already seen: nothing again


def test_shipped_configs_pass_check(project_copy: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "watcher", "check", "--config", str(project_copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "6 rules" in result.stdout
