"""Which /patterns/ may match an entry: RE2 Sets, each run as few times as it can be.

A Set tells in one pass which of its patterns match somewhere in a text. Patterns without
anchors (``^ $ \\A \\z \\Z``) share Sets run once per entry, over the padded text of
every field a pattern looks at (EntryText.padded: each segment in it has a space on both
sides), joined by newlines: what matches inside a segment matches there in the joined text
too, since only anchors look beyond a match (``\\b`` sees a space or a newline as it sees
the start or the end of a text). Such a pattern is then possible in every one of those
fields, and the matcher runs it on each field of its scope.
Patterns with an anchor (or what looks like one: ``[^a]`` is sent here too) get Sets run
over each segment on its own, and are possible only where they were reported.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import re2

from watcher.rules.entry_text import EntryText
from watcher.rules.patterns import OPTIONS
from watcher.rules.query import FIELDS

__all__ = ["PatternSets"]

_PATTERNS_PER_SET = 1024
_SET_OPTIONS = re2.Options()
_SET_OPTIONS.log_errors = OPTIONS.log_errors
_SET_OPTIONS.max_mem = 64 << 20  # bytes for the DFA of one Set, grown only as texts need
# Matches at the end of every text: a Set that does not report it gave up before the end.
_SENTINEL = r"\z"
_NO_KEY = -1  # what the sentinel reports: not a key id
_ANCHOR = re.compile(r"[\^$]|\\[AzZ]")

_Sets = tuple[tuple[Any, tuple[int, ...]], ...]


class PatternSets:
    """Patterns (each with its key id) compiled into RE2 Sets; thread-safe."""

    __slots__ = ("_anchored", "_fields", "_joined", "_looks")

    def __init__(self, patterns: Mapping[str, int], fields: Collection[str]) -> None:
        """``fields``: where patterns look (names of query.FIELDS)."""
        anchored = {pattern for pattern in patterns if _ANCHOR.search(pattern)}
        self._joined = _sets((p, key) for p, key in patterns.items() if p not in anchored)
        self._anchored = _sets((p, key) for p, key in patterns.items() if p in anchored)
        self._fields = tuple(field for field in FIELDS if field in fields)
        self._looks = tuple(field in fields for field in FIELDS)

    def keys(self, text: EntryText) -> tuple[list[int] | None, ...]:
        """Per field of query.FIELDS, the key ids of the patterns that may match there (and
        -1, no key id, for each Set run); None for a field no pattern looks at."""
        everywhere: list[int] = []
        if self._joined:
            # The padded texts as they are: no slice or list per field.
            joined = "\n".join(filter(None, text.padded_texts(self._fields)))
            if joined:
                _report(self._joined, joined.encode(), everywhere)
        if not self._anchored:
            return tuple(everywhere if looks else None for looks in self._looks)
        per_field: list[list[int] | None] = []
        for field, looks in zip(FIELDS, self._looks, strict=True):
            if not looks:
                per_field.append(None)
                continue
            keys = list(everywhere)
            for segment in text.segments(field):
                _report(self._anchored, segment.encode(), keys)
            per_field.append(keys)
        return tuple(per_field)


def _report(sets: _Sets, text: bytes, keys: list[int]) -> None:
    for pattern_set, key_ids in sets:
        reported = pattern_set.Match(text)
        # None: the Set's DFA gave up (memory); every pattern stays possible.
        keys.extend(key_ids if reported is None else map(key_ids.__getitem__, reported))


def _sets(patterns: Iterable[tuple[str, int]]) -> _Sets:
    """RE2 Sets of at most _PATTERNS_PER_SET patterns, each with the key id of each index."""
    items = list(patterns)
    sets = []
    for start in range(0, len(items), _PATTERNS_PER_SET):
        chunk = items[start : start + _PATTERNS_PER_SET]
        pattern_set = re2.Set.SearchSet(_SET_OPTIONS)
        pattern_set.Add(_SENTINEL)
        for pattern, _ in chunk:
            pattern_set.Add(pattern)
        pattern_set.Compile()
        sets.append((pattern_set, (_NO_KEY, *(key_id for _, key_id in chunk))))
    return tuple(sets)
