"""The reference evaluator: one query against one entry, by walking the syntax tree.

It is written for clarity; the compiled matcher (watcher.rules.compiled) must agree with it
on every entry, and computes the hits of the rules it finds matching with it.

Semantics (DESIGN.md "Precise points"):

- A term matches a whole token; ``x*`` matches x and every token that starts with x.
- A phrase is consecutive tokens within one field. A field is its own text: nothing spans
  two fields, and a phrase never spans two categories (their tokens are kept apart by
  CATEGORY_SEPARATOR, a token no query can contain).
- ``/pattern/`` matches where RE2 finds a non-empty match in a field's normalized text
  (EntryText.segments: tokens joined by single spaces, each category on its own).
- A term without field: looks at title, summary and content; ``field:…`` restricts it.
  AND, OR and NOT combine across the fields of one entry.
- ``a NEAR/n b``: an occurrence of a and one of b in the same field, in either order, whose
  nearest tokens are at most n positions apart (adjacent tokens are 1 apart). The two
  occurrences must not overlap, so ``trump NEAR/3 trump`` needs two "trump" tokens. The
  separator between two categories counts as one position.
- Hits, for provenance, never anything under a NOT: a term or phrase as written in the query,
  the token a prefix matched, an entity alias as written in the entities file (not a shorter
  alias inside a longer one that matched at the same place), the text a pattern matched.
  Distinct, first seen first: fields in scope order, then text order.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from watcher.rules.entry_text import EntryText
from watcher.rules.patterns import find_all
from watcher.rules.query import (
    DEFAULT_FIELDS,
    And,
    Entity,
    Field,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Regex,
    Term,
)

__all__ = ["Evaluation", "Occurrence", "distinct", "evaluate", "near"]


@dataclasses.dataclass(frozen=True, slots=True)
class Evaluation:
    """Whether a query matched, and what matched (distinct, first seen first)."""

    matched: bool
    hits: tuple[str, ...] = ()


_NO_MATCH = Evaluation(False)


def evaluate(node: Node, text: EntryText, scope: tuple[str, ...] = DEFAULT_FIELDS) -> Evaluation:
    """``node`` against ``text``, its unfielded terms looking at the fields in ``scope``."""
    match node:
        case Term() | Phrase():
            return _evaluation(_occurrences(node, text, scope))
        case Entity(aliases=aliases):
            occurrences = _occurrences(node, text, scope)
            return _evaluation(_outermost(occurrences) if len(aliases) > 1 else occurrences)
        case Regex(pattern=pattern):
            found = [
                hit
                for field in scope
                for part in text.segments(field)
                for hit in find_all(pattern, part)
            ]
            return Evaluation(True, distinct(found)) if found else _NO_MATCH
        case Field(field=field, child=child):
            return evaluate(child, text, (field,))
        case Not(child=child):
            return Evaluation(not evaluate(child, text, scope).matched)
        case And(children=children):
            hits: list[str] = []
            for child in children:
                result = evaluate(child, text, scope)
                if not result.matched:
                    return _NO_MATCH
                hits.extend(result.hits)
            return Evaluation(True, distinct(hits))
        case Or(children=children):
            # Every branch is evaluated, not just the first that matches: provenance lists
            # all of them.
            results = [evaluate(child, text, scope) for child in children]
            matched = [result for result in results if result.matched]
            return Evaluation(bool(matched), distinct(h for r in matched for h in r.hits))
        case Near():
            return _near(node, text, scope)


def distinct(hits: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(hits))


class Occurrence(NamedTuple):
    """One place a term, phrase or alias matched, for NEAR and for entities."""

    field: str
    start: int
    end: int  # inclusive: the position of the last token
    label: str  # what a hit reports


def _evaluation(occurrences: Sequence[Occurrence]) -> Evaluation:
    if not occurrences:
        return _NO_MATCH
    return Evaluation(True, distinct(occurrence.label for occurrence in occurrences))


def _outermost(occurrences: Sequence[Occurrence]) -> list[Occurrence]:
    """Drop occurrences inside a longer one: "Vladimir Putin" hits as itself, not also "Putin".

    Of two occurrences at the same place (``(a OR a)``), the first stays.
    """
    inside: set[int] = set()  # indexes, not occurrences: equal occurrences are told apart
    reach: dict[str, int] = {}  # per field: the furthest end of the occurrences seen so far
    # Sorted by start, longest first: an occurrence is inside an earlier one iff that ends
    # at or after its end.
    order = sorted(
        range(len(occurrences)),
        key=lambda i: (occurrences[i].field, occurrences[i].start, -occurrences[i].end),
    )
    for index in order:
        occurrence = occurrences[index]
        if reach.get(occurrence.field, -1) >= occurrence.end:
            inside.add(index)
        reach[occurrence.field] = max(reach.get(occurrence.field, -1), occurrence.end)
    return [occurrence for index, occurrence in enumerate(occurrences) if index not in inside]


def _near(node: Near, text: EntryText, scope: tuple[str, ...]) -> Evaluation:
    lefts = _occurrences(node.left, text, scope)
    rights = _occurrences(node.right, text, scope) if lefts else []
    return near(lefts, rights, node.distance)


def near(lefts: Sequence[Occurrence], rights: Sequence[Occurrence], distance: int) -> Evaluation:
    """``left NEAR/distance right``, given the occurrences of each side (in _occurrences order)."""
    paired_lefts = _near_any(lefts, rights, distance)
    if not paired_lefts:
        return _NO_MATCH
    paired_rights = _near_any(rights, lefts, distance)
    return _evaluation([*_outermost(paired_lefts), *_outermost(paired_rights)])


def _near_any(
    occurrences: Sequence[Occurrence], others: Sequence[Occurrence], distance: int
) -> list[Occurrence]:
    """The occurrences with one of ``others`` in their field at most ``distance`` away.

    Overlapping occurrences do not count, so only the nearest other that starts after the
    occurrence ends and the nearest that ends before it starts need a look.
    """
    starts: defaultdict[str, list[int]] = defaultdict(list)
    ends: defaultdict[str, list[int]] = defaultdict(list)
    for other in others:
        starts[other.field].append(other.start)
        ends[other.field].append(other.end)
    for positions in (*starts.values(), *ends.values()):
        positions.sort()
    found = []
    for occurrence in occurrences:
        field_starts, field_ends = starts[occurrence.field], ends[occurrence.field]
        after = bisect.bisect_right(field_starts, occurrence.end)
        before = bisect.bisect_left(field_ends, occurrence.start) - 1
        if (after < len(field_starts) and field_starts[after] - occurrence.end <= distance) or (
            before >= 0 and occurrence.start - field_ends[before] <= distance
        ):
            found.append(occurrence)
    return found


def _occurrences(node: Node, text: EntryText, scope: tuple[str, ...]) -> list[Occurrence]:
    """Every place the node matches, for the nodes that match at places (NEAR's sides)."""
    match node:
        case Term(token=token, prefix=True):
            return [
                found
                for field in scope
                for found in _sorted(
                    occurrence
                    for started in text.tokens_starting_with(field, token)
                    for occurrence in _sequence(text, field, (started,), started)
                )
            ]
        case Term(token=token):
            return [
                found for field in scope for found in _sequence(text, field, (token,), node.label)
            ]
        case Phrase(tokens=tokens):
            return [
                found for field in scope for found in _sequence(text, field, tokens, node.label)
            ]
        case Entity(aliases=aliases):
            return [
                found
                for field in scope
                for found in _sorted(
                    occurrence
                    for index, alias in enumerate(aliases)
                    for occurrence in _sequence(text, field, alias, node.label(index))
                )
            ]
        case Or(children=children):
            return [found for child in children for found in _occurrences(child, text, scope)]
        case Field(field=field, child=child):
            return _occurrences(child, text, (field,))
        case _:
            raise ValueError(f"{type(node).__name__} cannot be a side of NEAR")


def _sequence(text: EntryText, field: str, tokens: Sequence[str], label: str) -> list[Occurrence]:
    """Where ``tokens`` occur consecutively in ``field``."""
    field_tokens = text.tokens(field)
    return [
        Occurrence(field, start, start + len(tokens) - 1, label)
        for start in text.positions(field, tokens[0])
        if field_tokens[start : start + len(tokens)] == tuple(tokens)
    ]


def _sorted(occurrences: Iterable[Occurrence]) -> list[Occurrence]:
    return sorted(occurrences, key=lambda occurrence: occurrence.start)
