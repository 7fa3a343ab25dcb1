"""RE2 patterns of ``/pattern/`` terms: compiled once, run over normalized field text.

RE2 runs in time linear in the text, whatever the pattern, so a rule cannot stall the
daemon. A pattern matches where it matches at least one character: an empty match (``x*``
before any "x", ``\\b``) is no match and no hit.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

__all__ = ["OPTIONS", "compile_pattern", "find_all", "pattern_error"]

OPTIONS = re2.Options()
OPTIONS.log_errors = False  # RE2 would print every rejected pattern to stderr


@functools.cache
def compile_pattern(pattern: str) -> Any:
    """The compiled RE2 pattern; raises re2.error for an invalid one (see pattern_error)."""
    return re2.compile(pattern, OPTIONS)


def pattern_error(pattern: str) -> str | None:
    """RE2's complaint about ``pattern``, or None when it compiles."""
    try:
        compile_pattern(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    return None


def find_all(pattern: str, text: str) -> list[str]:
    """The non-empty, non-overlapping matches of ``pattern`` in ``text``, leftmost first."""
    # Over the UTF-8 bytes, as RE2 runs anyway: given a str, the wrapper maps every match
    # back to str offsets, which took half the time. A match starts and ends on whole
    # characters (a lone continuation byte matches nothing but \C, hence "replace").
    encoded = text.encode("utf-8", "surrogatepass")
    return [
        found.group().decode("utf-8", "replace")
        for found in compile_pattern(pattern).finditer(encoded)
        if found.end() > found.start()
    ]
