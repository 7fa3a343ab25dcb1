"""Noticing that rules files changed on disk, cheaply: a fingerprint of names, sizes and
modification times, compared at every tick."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from watcher.yamlfile import walk_files

Fingerprint = tuple[tuple[str, int, int], ...]


def rules_fingerprint(rules_path: Path | None, included: Iterable[Path]) -> Fingerprint:
    """What the rules depend on: the rules file or every *.yaml of the rules folder (so a
    new file counts), plus the files they include."""
    files: set[Path] = set(included)
    if rules_path is not None and rules_path.is_dir():
        files.update(walk_files(rules_path))
    elif rules_path is not None:
        files.add(rules_path)
    return tuple(_stat(path) for path in sorted(files))


def _stat(path: Path) -> tuple[str, int, int]:
    try:
        info = path.stat()
    except OSError:
        return (str(path), -1, -1)  # a deleted file is a change too
    return (str(path), info.st_mtime_ns, info.st_size)
