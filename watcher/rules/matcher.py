"""Compiled rules and the reference evaluator that matches them against one entry.

This evaluator walks the syntax tree over per-field token lists. It is written for
clarity: a faster matcher must agree with it on every entry.

Semantics (DESIGN.md "Precise points"):

- A term matches a whole token; ``x*`` matches x and every token that starts with x.
- A phrase is consecutive tokens within one field. A field is its own text: nothing spans
  two fields, and a phrase never spans two categories (their tokens are kept apart by
  CATEGORY_SEPARATOR, a token no query can contain).
- A term without field: looks at title, summary and content; ``field:…`` restricts it.
  AND, OR and NOT combine across the fields of one entry.
- ``a NEAR/n b``: an occurrence of a and one of b in the same field, in either order, whose
  nearest tokens are at most n positions apart (adjacent tokens are 1 apart). The two
  occurrences must not overlap, so ``trump NEAR/3 trump`` needs two "trump" tokens. The
  separator between two categories counts as one position.
- Hits, for provenance: the normalized text of what matched (the token a prefix matched,
  the alias of an entity, but not a shorter alias inside a longer one that matched at the
  same place), never anything under a NOT.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence

from watcher.models import Entry, Match, Rule
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
    Term,
    parse_query,
)
from watcher.rules.text import tokenize

__all__ = ["CATEGORY_SEPARATOR", "EntryText", "Evaluation", "RuleSet", "evaluate"]

CATEGORY_SEPARATOR = ""  # tokens are never empty, so no term or phrase matches across it


@dataclasses.dataclass(frozen=True, slots=True)
class EntryText:
    """The matchable form of one entry, built once per entry: field name -> tokens."""

    fields: Mapping[str, tuple[str, ...]]
    _positions: Mapping[str, Mapping[str, tuple[int, ...]]] = dataclasses.field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        index = {name: _positions_of(tokens) for name, tokens in self.fields.items()}
        object.__setattr__(self, "_positions", index)

    @classmethod
    def from_entry(cls, entry: Entry) -> EntryText:
        return cls(
            {
                "title": tuple(tokenize(entry.title)),
                "summary": tuple(tokenize(entry.summary)),
                "content": tuple(tokenize(entry.content)),
                "author": tuple(tokenize(entry.author)),
                "category": _kept_apart(entry.categories),
                "link": tuple(tokenize(entry.link or "")),
                "feed": tuple(tokenize(entry.feed)),
            }
        )

    def tokens(self, field: str) -> tuple[str, ...]:
        return self.fields.get(field, ())

    def positions(self, field: str, token: str) -> tuple[int, ...]:
        """Where ``token`` occurs in ``field``, in ascending order."""
        return self._positions.get(field, {}).get(token, ())

    def tokens_starting_with(self, field: str, prefix: str) -> list[str]:
        """The distinct tokens of ``field`` that start with ``prefix`` (prefix itself too)."""
        return [token for token in self._positions.get(field, {}) if token.startswith(prefix)]


def _positions_of(tokens: Sequence[str]) -> dict[str, tuple[int, ...]]:
    positions: defaultdict[str, list[int]] = defaultdict(list)
    for position, token in enumerate(tokens):
        if token != CATEGORY_SEPARATOR:
            positions[token].append(position)
    return {token: tuple(found) for token, found in positions.items()}


def _kept_apart(pieces: Iterable[str]) -> tuple[str, ...]:
    tokens: list[str] = []
    for piece in pieces:
        piece_tokens = tokenize(piece)
        if piece_tokens and tokens:
            tokens.append(CATEGORY_SEPARATOR)
        tokens.extend(piece_tokens)
    return tuple(tokens)


@dataclasses.dataclass(frozen=True, slots=True)
class Evaluation:
    """Whether a query matched, and what matched (distinct, first seen first)."""

    matched: bool
    hits: tuple[str, ...] = ()


_NO_MATCH = Evaluation(False)


def evaluate(node: Node, text: EntryText) -> Evaluation:
    return _evaluate(node, text, DEFAULT_FIELDS)


def _evaluate(node: Node, text: EntryText, scope: tuple[str, ...]) -> Evaluation:
    match node:
        case Term() | Phrase():
            return _evaluation(_occurrences(node, text, scope))
        case Entity(aliases=aliases):
            occurrences = _occurrences(node, text, scope)
            return _evaluation(_outermost(occurrences) if len(aliases) > 1 else occurrences)
        case Field(field=field, child=child):
            return _evaluate(child, text, (field,))
        case Not(child=child):
            return Evaluation(not _evaluate(child, text, scope).matched)
        case And(children=children):
            hits: list[str] = []
            for child in children:
                result = _evaluate(child, text, scope)
                if not result.matched:
                    return _NO_MATCH
                hits.extend(result.hits)
            return Evaluation(True, _distinct(hits))
        case Or(children=children):
            # Every branch is evaluated, not just the first that matches: provenance lists
            # all of them.
            results = [_evaluate(child, text, scope) for child in children]
            matched = [result for result in results if result.matched]
            return Evaluation(bool(matched), _distinct(h for r in matched for h in r.hits))
        case Near():
            return _near(node, text, scope)


@dataclasses.dataclass(frozen=True, slots=True)
class _Occurrence:
    field: str
    start: int
    end: int  # inclusive: the position of the last token
    label: str  # the normalized text that matched


def _evaluation(occurrences: Sequence[_Occurrence]) -> Evaluation:
    if not occurrences:
        return _NO_MATCH
    return Evaluation(True, _distinct(occurrence.label for occurrence in occurrences))


def _outermost(occurrences: Sequence[_Occurrence]) -> list[_Occurrence]:
    """Drop occurrences inside a longer one: "Vladimir Putin" hits as itself, not also "Putin"."""
    inside: set[_Occurrence] = set()
    reach: dict[str, int] = {}  # per field: the furthest end of the occurrences seen so far
    # Sorted by start, longest first: an occurrence is inside an earlier one iff that ends
    # at or after its end.
    for occurrence in sorted(occurrences, key=lambda o: (o.field, o.start, -o.end)):
        if reach.get(occurrence.field, -1) >= occurrence.end:
            inside.add(occurrence)
        reach[occurrence.field] = max(reach.get(occurrence.field, -1), occurrence.end)
    return [occurrence for occurrence in occurrences if occurrence not in inside]


def _near(node: Near, text: EntryText, scope: tuple[str, ...]) -> Evaluation:
    lefts = _occurrences(node.left, text, scope)
    rights = _occurrences(node.right, text, scope) if lefts else []
    paired_lefts = _near_any(lefts, rights, node.distance)
    if not paired_lefts:
        return _NO_MATCH
    paired_rights = _near_any(rights, lefts, node.distance)
    return _evaluation([*_outermost(paired_lefts), *_outermost(paired_rights)])


def _near_any(
    occurrences: Sequence[_Occurrence], others: Sequence[_Occurrence], distance: int
) -> list[_Occurrence]:
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


def _occurrences(node: Node, text: EntryText, scope: tuple[str, ...]) -> list[_Occurrence]:
    """Every place the node matches, for the nodes that match at places (NEAR's sides)."""
    match node:
        case Term(token=token, prefix=True):
            return [
                found
                for field in scope
                for found in _sorted(
                    occurrence
                    for started in text.tokens_starting_with(field, token)
                    for occurrence in _sequence(text, field, (started,))
                )
            ]
        case Term(token=token):
            return [found for field in scope for found in _sequence(text, field, (token,))]
        case Phrase(tokens=tokens):
            return [found for field in scope for found in _sequence(text, field, tokens)]
        case Entity(aliases=aliases):
            return [
                found
                for field in scope
                for found in _sorted(
                    occurrence for alias in aliases for occurrence in _sequence(text, field, alias)
                )
            ]
        case Or(children=children):
            return [found for child in children for found in _occurrences(child, text, scope)]
        case Field(field=field, child=child):
            return _occurrences(child, text, (field,))
        case _:
            raise ValueError(f"{type(node).__name__} cannot be a side of NEAR")


def _sequence(text: EntryText, field: str, tokens: Sequence[str]) -> list[_Occurrence]:
    """Where ``tokens`` occur consecutively in ``field``."""
    field_tokens = text.tokens(field)
    label = " ".join(tokens)
    return [
        _Occurrence(field, start, start + len(tokens) - 1, label)
        for start in text.positions(field, tokens[0])
        if field_tokens[start : start + len(tokens)] == tuple(tokens)
    ]


def _sorted(occurrences: Iterable[_Occurrence]) -> list[_Occurrence]:
    return sorted(occurrences, key=lambda occurrence: occurrence.start)


def _distinct(hits: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(hits))


@dataclasses.dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    queries: tuple[Node, ...]

    def applies_to(self, feed_name: str, feed_tags: Collection[str]) -> bool:
        """Empty feeds: every feed; else the feed's name or one of its tags is listed."""
        if not self.rule.feeds:
            return True
        return any(
            scope[4:] in feed_tags if scope.startswith("tag:") else scope == feed_name
            for scope in self.rule.feeds
        )


class RuleSet:
    """Rules with their queries parsed once; matching is pure and thread-safe."""

    __slots__ = ("_compiled",)

    def __init__(self, compiled: Iterable[_CompiledRule]) -> None:
        self._compiled = tuple(compiled)

    @classmethod
    def compile(cls, rules: Sequence[Rule], entities: Mapping[str, Sequence[str]]) -> RuleSet:
        """Parse every query of every rule; raises RuleSyntaxError for the first bad one."""
        return cls(
            _CompiledRule(rule, tuple(parse_query(query, entities) for query in rule.queries))
            for rule in rules
        )

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(compiled.rule for compiled in self._compiled)

    def match(self, entry: Entry, feed_tags: Collection[str] = ()) -> list[Match]:
        if not any(compiled.applies_to(entry.feed, feed_tags) for compiled in self._compiled):
            return []
        return self.match_text(EntryText.from_entry(entry), entry.key, entry.feed, feed_tags)

    def match_text(
        self, text: EntryText, entry_key: str, feed_name: str, feed_tags: Collection[str] = ()
    ) -> list[Match]:
        """One Match per rule that applies to the feed and has a query that matches."""
        matches: list[Match] = []
        for compiled in self._compiled:
            if not compiled.applies_to(feed_name, feed_tags):
                continue
            results = [evaluate(query, text) for query in compiled.queries]
            matched = [result for result in results if result.matched]
            if matched:
                terms = _distinct(hit for result in matched for hit in result.hits)
                matches.append(Match(compiled.rule.name, entry_key, terms))
        return matches
