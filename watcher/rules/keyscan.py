"""Keys, clauses and rules as the flat tables of the native scan (watcher/rules/_keyscan.c).

The compiled matcher (compiled.py) decides what the keys, clauses and rules are; this module
lays them out for the C scanner and is the only one that imports it:

- the keys become a byte trie (UTF-8, ``surrogatepass`` as the scanner encodes texts). Every
  key starts with a space, and the scanner walks the trie from each space of a text;
- per field, the clauses each key satisfies when found in that field;
- per clause, the rules that need it; per rule, how many clauses it has. A rule is a
  candidate once all its clauses are satisfied;
- NEAR checks: a check is a key found in a field where an occurrence of a key of its left
  side and one of its right side lie close enough, so a NEAR clause is counted like any other.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from watcher.rules._keyscan import KeyScanner
from watcher.rules._keyscan import outermost as _outermost

__all__ = ["KeyIndex", "NearCheck", "NearEntry", "outermost"]

_BREADTH_FIRST_LEVELS = 4  # the trie's numbering; see _trie


class NearEntry(NamedTuple):
    """A key of one side of a NEAR check, in one field."""

    field: int
    side: int  # 0 left, 1 right
    key: int
    length: int  # in tokens: a phrase's occurrence ends length - 1 tokens after it starts


class NearCheck(NamedTuple):
    """Found, as ``key``, in a field where a left and a right occurrence do not overlap and
    the later starts at most ``distance`` tokens after the earlier ends."""

    key: int
    distance: int
    entries: Sequence[NearEntry]


class KeyIndex:
    """Per entry, in one native call: the fields each key is found in, and the candidate
    rules."""

    __slots__ = ("_scanner",)

    def __init__(
        self,
        keys: Mapping[str, int],
        key_count: int,
        field_count: int,
        clauses: Sequence[Collection[tuple[int, int]]],
        rule_clauses: Sequence[Collection[int]],
        *,
        near_checks: Sequence[NearCheck] = (),
    ) -> None:
        """``keys``: text -> key id (< ``key_count``; ids without text are found by others).

        ``clauses``: per clause id, the (field index, key id) pairs that satisfy it; at most
        8 fields.
        ``rule_clauses``: per rule, its clause ids; a rule without any is never a candidate.
        ``near_checks``: their keys are ids without text, found by the scan itself.
        """
        starts, labels, targets, node_keys = _trie(keys)
        by_field: list[dict[int, set[int]]] = [{} for _ in range(field_count)]
        for clause, pairs in enumerate(clauses):
            for field, key in pairs:
                by_field[field].setdefault(key, set()).add(clause)
        field_tables = [_csr([row.get(key, ()) for key in range(key_count)]) for row in by_field]
        clause_starts, clause_rules = _csr(_inverted(rule_clauses, len(clauses)))
        entry_starts, entries = array("i", [0]), array("i")
        for check in near_checks:
            for entry in sorted(check.entries):  # by field, then side
                entries.extend(entry)
            entry_starts.append(len(entries) // 4)
        self._scanner = KeyScanner(
            key_count,
            starts,
            labels,
            targets,
            node_keys,
            tuple(starts for starts, _ in field_tables),
            tuple(clause_ids for _, clause_ids in field_tables),
            clause_starts,
            clause_rules,
            array("i", map(len, rule_clauses)),
            array("i", (check.key for check in near_checks)),
            array("i", (check.distance for check in near_checks)),
            entry_starts,
            entries,
        )

    def scan(
        self, texts: tuple[str | None, ...], extra: tuple[list[int] | None, ...] | None = None
    ) -> tuple[list[int], bytes]:
        """``texts``: per field its padded text, or None to skip it; ``extra``: per field
        key ids found otherwise (RE2), or None. Returns the candidate rules, ascending, and
        per key id a byte whose bit ``f`` is set when field ``f`` has the key."""
        return self._scanner.scan(texts, extra)


def outermost(text: str, keys: tuple[str, ...]) -> list[int]:
    """The indexes of ``keys`` (whole tokens, a space at both ends) that occur in ``text``
    outside every longer occurrence of one of them, each once, in the order of its first
    such occurrence; of two at the same place, the earlier key's."""
    return _outermost(text, keys)


def _trie(keys: Mapping[str, int]) -> tuple[array[int], bytes, array[int], array[int]]:
    """Edges per node (offsets, labels, targets) and the key id ending at each node."""
    children: list[dict[int, int]] = [{}]
    node_keys = array("i", [-1])
    for key, key_id in keys.items():
        if not key.startswith(" "):
            raise ValueError(f"a key must start with a space: {key!r}")
        node = 0
        for byte in key.encode("utf-8", "surrogatepass"):
            edges = children[node]
            node = edges.get(byte, -1)
            if node < 0:
                node = edges[byte] = len(children)
                children.append({})
                node_keys.append(-1)
        node_keys[node] = key_id
    # The first levels (the root, the space, a token's first two bytes), which nearly every
    # walk passes through, breadth first: side by side, they stay cached. Below them depth
    # first: a node's first child follows it, so the long single-edge chains of rare keys
    # lie on consecutive cache lines, and the scanner steps along them without an edge
    # table. Cachegrind at 10,000 rules: depth first throughout had 8% more L1 misses, one
    # level fewer breadth first 7% more, one more 4% more (and, measured on an older scan,
    # breadth first throughout a third more).
    order: list[int] = []
    level = [0]
    for _ in range(_BREADTH_FIRST_LEVELS):
        order.extend(level)
        level = [children[node][byte] for node in level for byte in sorted(children[node])]
    stack = level[::-1]
    while stack:
        node = stack.pop()
        order.append(node)
        stack.extend(children[node][byte] for byte in sorted(children[node], reverse=True))
    number = {node: index for index, node in enumerate(order)}
    starts, labels, targets = array("i", [0]), bytearray(), array("i")
    for node in order:
        edges = children[node]
        for byte in sorted(edges):
            labels.append(byte)
            targets.append(number[edges[byte]])
        starts.append(len(targets))
    return starts, bytes(labels), targets, array("i", (node_keys[node] for node in order))


def _inverted(rule_clauses: Sequence[Collection[int]], clause_count: int) -> list[list[int]]:
    rules: list[list[int]] = [[] for _ in range(clause_count)]
    for rule, clause_ids in enumerate(rule_clauses):
        for clause in clause_ids:
            rules[clause].append(rule)
    return rules


def _csr(rows: Sequence[Collection[int]]) -> tuple[array[int], array[int]]:
    """Offsets (one more than rows) and the values of every row, each row ascending."""
    starts, values = array("i", [0]), array("i")
    for row in rows:
        values.extend(sorted(row))
        starts.append(len(values))
    return starts, values
