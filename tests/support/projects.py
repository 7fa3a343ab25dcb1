"""A throwaway watcher project on disk: a rules file with one rule, and a config."""

from __future__ import annotations

from pathlib import Path

SANCTIONS_RULES = "rules:\n  - {name: sanctions, match: sanctions}\n"


def write_project(
    tmp_path: Path,
    feeds: dict[str, str],
    target: str,
    *,
    store: str = "sqlite:///w.db",
    timeout: str = "10s",
) -> Path:
    """rules/r.yaml with the `sanctions` rule, and watcher.yaml polling ``feeds`` (name ->
    URL, private addresses allowed) into ``store`` and notifying ``target``; its path."""
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "rules" / "r.yaml").write_text(SANCTIONS_RULES, encoding="utf-8")
    listed = "".join(f"  - {{name: {name}, url: '{url}'}}\n" for name, url in feeds.items())
    config = tmp_path / "watcher.yaml"
    config.write_text(
        f"store: '{store}'\nfetch: {{allow_private_networks: true, timeout: {timeout}}}\n"
        f"feeds:\n{listed}notify: {{hook: '{target}'}}\n",
        encoding="utf-8",
    )
    return config
