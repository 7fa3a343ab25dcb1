"""The compiled matcher: which rules match an entry, at a cost that grows with the text.

Every query of every rule is compiled once:

- each term, phrase, entity alias and prefix becomes a key of ONE native scanner
  (watcher.rules.keyscan) that runs over a field's tokens joined by single spaces, with a
  space at both ends. A term or phrase is the key " a b " and so matches whole tokens only;
  a prefix is " sanction". Categories are kept apart by a double space, which no key
  contains.
- each /pattern/ joins an RE2 Set, which tells in one pass which patterns can match a field.
- each query becomes a predicate over the keys an entry contains, per scope (the fields an
  unfielded term looks at, or one field); a function that lists its hits once it matched;
  and clauses: sets of keys of which the query needs one each (``a (b OR c)``: {a}, {b, c};
  none for a query that can match without any key, such as ``NOT x``).

Per entry: the RE2 Sets over the fields patterns look at, then one native call that finds
the keys in every field, counts the clauses they satisfy and returns the rules whose clauses
all hold; those, and the few rules without clauses, are looked at. A found key is exact
evidence of a term, phrase, alias or prefix, so a rule made of those alone has matched once
all its clauses are satisfied; the others run their predicate: NEAR was decided by the scan
(a check found as a key of its own) and lists its places only for its hits, /pattern/ runs
on the fields its Set reported. Results and hits are the reference evaluator's
(watcher.rules.reference): the tests hold the two to each other.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import operator
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

from watcher.rules.entry_text import EntryText
from watcher.rules.keyscan import KeyIndex, NearCheck, NearEntry, outermost
from watcher.rules.pattern_sets import PatternSets
from watcher.rules.patterns import compile_pattern, find_all
from watcher.rules.query import (
    DEFAULT_FIELDS,
    FIELDS,
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
from watcher.rules.reference import Evaluation, Occurrence, distinct, near

__all__ = ["CompiledRules"]

_NO_MATCH = Evaluation(False)

_Scope = tuple[str, ...]
_Predicate = Callable[["_Found"], int]  # truthy when the node matches
_Hits = Callable[["_Found"], tuple[str, ...]]  # only called once the node matched
# A NEAR side's occurrences in some of the fields (the others cannot pair).
_Places = Callable[["_Found", Collection[str]], list[Occurrence]]
# The native scan numbers fields as FIELDS does; a key's byte of flags has one bit per field.
_BIT = {field: 1 << index for index, field in enumerate(FIELDS)}


class _Found:
    """What one entry contains: per key id, a byte with bit ``_BIT[field]`` set for each
    field the key is found in."""

    __slots__ = ("_evaluations", "flags", "text")

    def __init__(self, text: EntryText, flags: bytes) -> None:
        self.text = text
        self.flags = flags
        self._evaluations: dict[int, Evaluation] = {}

    def evaluation(self, slot: int, compute: Callable[[_Found], Evaluation]) -> Evaluation:
        """``compute(self)``, once per entry even when rules share the node of ``slot``."""
        result = self._evaluations.get(slot)
        if result is None:
            result = self._evaluations[slot] = compute(self)
        return result


@dataclasses.dataclass(frozen=True, slots=True)
class _Clause:
    """Keys, as (scope id, key id), of which a query needs at least one."""

    keys: frozenset[tuple[int, int]]
    cost: float  # a guess at how often one is found: an OR keeps each child's cheapest

    def __or__(self, other: _Clause) -> _Clause:
        return _Clause(self.keys | other.keys, self.cost + other.cost)


@dataclasses.dataclass(frozen=True, slots=True)
class _Compiled:
    """A query or a part of one, compiled."""

    matched: _Predicate
    hits: _Hits
    clauses: tuple[_Clause, ...]  # all hold when the node matches
    exact: bool  # and the node matches when they all hold
    labels: tuple[str, ...] | None = None  # the hits, when they are the same on every match
    # For a term, phrase or entity alone: its key ids and the fields (a mask) it looks in.
    keyed: tuple[tuple[int, ...], int] | None = None


class CompiledRules:
    """The queries of a list of rules, compiled once; thread-safe and free of side effects."""

    __slots__ = (
        "_exact",
        "_hits",
        "_index",
        "_labels",
        "_patterns",
        "_predicates",
        "_scanned",
        "_unguarded",
    )

    def __init__(self, rules: Sequence[Sequence[Node]]) -> None:
        """``rules``: for each rule, its parsed queries (a rule matches if any query does)."""
        builder = _Builder()
        compiled = [builder.rule(queries) for queries in rules]
        self._predicates = tuple(rule.matched for rule in compiled)
        self._hits = tuple(rule.hits for rule in compiled)
        self._exact = tuple(rule.exact for rule in compiled)
        self._labels = tuple(rule.labels for rule in compiled)
        # A rule is a candidate for an entry once the entry has a key of each of its clauses;
        # an exact rule has then matched, any other runs its predicate. Clauses are shared
        # (many rules need @Putin), so each distinct one gets an id.
        clause_ids: dict[frozenset[tuple[int, int]], int] = {}
        rule_clauses = [
            {clause_ids.setdefault(clause.keys, len(clause_ids)) for clause in rule.clauses}
            for rule in compiled
        ]
        self._unguarded = tuple(index for index, ids in enumerate(rule_clauses) if not ids)
        scopes = tuple(builder.scopes)
        field_index = {field: index for index, field in enumerate(FIELDS)}
        self._index = KeyIndex(
            builder.keys,
            builder.key_count,
            len(FIELDS),
            [
                {(field_index[field], key) for scope, key in keys for field in scopes[scope]}
                for keys in clause_ids
            ],
            rule_clauses,
            near_checks=builder.near_checks,
        )
        # Per field of FIELDS: its name where the scan reads its text, else "" (None, as
        # EntryText.padded_texts gives it).
        self._scanned = tuple(field if field in builder.key_fields else "" for field in FIELDS)
        self._patterns = (
            PatternSets(builder.patterns, builder.pattern_fields) if builder.patterns else None
        )

    def matching(self, text: EntryText) -> list[int]:
        """The indexes of the rules that have a query matching ``text``, ascending."""
        found, candidates = self._candidates(text)
        exact, predicates = self._exact, self._predicates
        return [index for index in candidates if exact[index] or predicates[index](found)]

    def matches(
        self, text: EntryText, applies: Callable[[int], bool] | None = None
    ) -> list[tuple[int, tuple[str, ...]]]:
        """(index, hits) of each rule that ``applies`` and matches ``text``, ascending."""
        found, candidates = self._candidates(text)
        exact, predicates, hits, labels = self._exact, self._predicates, self._hits, self._labels
        matches = []
        for index in candidates:
            if (applies is None or applies(index)) and (exact[index] or predicates[index](found)):
                # Most rules have the same hits on every match: no call, no closure to visit.
                constant = labels[index]
                matches.append((index, hits[index](found) if constant is None else constant))
        return matches

    def _candidates(self, text: EntryText) -> tuple[_Found, list[int]]:
        patterns = self._patterns
        extra = None if patterns is None else patterns.keys(text)
        candidates, flags = self._index.scan(text.padded_texts(self._scanned), extra)
        if self._unguarded:
            candidates = sorted(candidates + list(self._unguarded))
        return _Found(text, flags), candidates


def _mask(scope: _Scope) -> int:
    return sum(_BIT[field] for field in scope)


def _has_any(flags: bytes, keys: Iterable[int], mask: int) -> bool:
    """Whether one of ``keys`` is found in a field of ``mask``."""
    for key in keys:  # noqa: SIM110 - a plain loop, as any() over a generator is slower
        if flags[key] & mask:
            return True
    return False


class _Builder:
    """Compiles queries, collecting the keys, patterns and scopes they use."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}  # automaton key -> key id
        self.key_texts: dict[int, str] = {}  # the other way
        self.patterns: dict[str, int] = {}  # RE2 pattern -> key id
        self.near_checks: list[NearCheck] = []  # each with a key id of its own
        self.key_count = 0  # key ids given: keys, patterns and NEAR checks
        self.key_fields: set[str] = set()
        self.pattern_fields: set[str] = set()
        self.scopes: dict[_Scope, int] = {}
        self._slots: dict[tuple[Node, _Scope], int] = {}  # nodes whose result is remembered

    def rule(self, queries: Sequence[Node]) -> _Compiled:
        return _either([self.node(query, DEFAULT_FIELDS) for query in queries])

    def node(self, node: Node, scope: _Scope) -> _Compiled:
        match node:
            case Term(token=token, prefix=True):
                key = f" {token}"
                hits = _prefix_hits(scope, self._key(key), key)
                return self._keys(scope, [key], 3.0 / len(token), hits)
            case Term(token=token):
                return self._keys(scope, [f" {token} "], 1.0 / len(token), node.label)
            case Phrase(tokens=tokens):
                return self._keys(scope, [_key(tokens)], _cost(tokens), node.label)
            case Entity(aliases=aliases):
                keys = [_key(alias) for alias in aliases]
                labelled = tuple(
                    (self._key(key), key, node.label(index)) for index, key in enumerate(keys)
                )
                hits = _entity_hits(scope, labelled, self._slot(node, scope))
                return self._keys(scope, keys, sum(map(_cost, aliases)), hits)
            case Regex(pattern=pattern):
                return self._regex(node, pattern, scope)
            case Field(field=field, child=child):
                return self.node(child, (field,))
            case Not(child=child):
                inner = self.node(child, scope).matched
                return _Compiled(
                    lambda found: not inner(found), _constant(), (), exact=False, labels=()
                )
            case And(children=children):
                compiled = [self.node(child, scope) for child in children]
                clauses = {c.keys: c for child in compiled for c in child.clauses}
                labels = _labels(compiled)
                return _Compiled(
                    _all([child.matched for child in compiled]),
                    _all_hits([child.hits for child in compiled])
                    if labels is None
                    else _constant(*labels),
                    tuple(clauses.values()),
                    exact=all(child.exact for child in compiled),
                    labels=labels,
                )
            case Or(children=children):
                return _either([self.node(child, scope) for child in children])
            case Near():
                return self._near(node, scope)

    def _new_id(self) -> int:
        self.key_count += 1
        return self.key_count - 1

    def _scope(self, scope: _Scope) -> int:
        return self.scopes.setdefault(scope, len(self.scopes))

    def _key(self, key: str) -> int:
        key_id = self.keys.get(key)
        if key_id is None:
            key_id = self.keys[key] = self._new_id()
            self.key_texts[key_id] = key
        return key_id

    def _keys(
        self, scope: _Scope, keys: Sequence[str], cost: float, hits: _Hits | str
    ) -> _Compiled:
        """A node that matches where one of ``keys`` is found; ``hits`` a str: its label."""
        scope_id = self._scope(scope)
        self.key_fields.update(scope)
        key_ids = tuple(dict.fromkeys(self._key(key) for key in keys))
        clause = _Clause(frozenset((scope_id, key_id) for key_id in key_ids), cost)
        mask = _mask(scope)
        matched: _Predicate
        if len(key_ids) == 1:
            (only,) = key_ids
            matched = lambda found: found.flags[only] & mask  # noqa: E731
        else:
            matched = lambda found: _has_any(found.flags, key_ids, mask)  # noqa: E731
        if isinstance(hits, str):
            return _Compiled(
                matched,
                _constant(hits),
                (clause,),
                exact=True,
                labels=(hits,),
                keyed=(key_ids, mask),
            )
        return _Compiled(matched, hits, (clause,), exact=True)

    def _slot(self, node: Node, scope: _Scope) -> int:
        return self._slots.setdefault((node, scope), len(self._slots))

    def _regex(self, node: Regex, pattern: str, scope: _Scope) -> _Compiled:
        scope_id = self._scope(scope)
        self.pattern_fields.update(scope)
        key_id = self.patterns.get(pattern, -1)
        if key_id < 0:
            key_id = self.patterns[pattern] = self._new_id()
        compile_pattern(pattern)  # now rather than when the first entry needs it
        slot = self._slot(node, scope)
        mask = _mask(scope)

        def evaluation(found: _Found) -> Evaluation:
            # As the reference evaluator does, but only in the fields the Set reported.
            text, flags = found.text, found.flags
            matches = [
                match
                for field in scope
                if flags[key_id] & _BIT[field]
                for segment in text.segments(field)
                for match in find_all(pattern, segment)
            ]
            return Evaluation(bool(matches), distinct(matches))

        def matched(found: _Found) -> int:
            return found.flags[key_id] & mask and found.evaluation(slot, evaluation).matched

        def hits(found: _Found) -> tuple[str, ...]:
            return found.evaluation(slot, evaluation).hits

        # The Set reports a pattern that can match, even if only empty text: not exact.
        clause = _Clause(frozenset({(scope_id, key_id)}), 1.0)
        return _Compiled(matched, hits, (clause,), exact=False)

    def _near(self, node: Near, scope: _Scope) -> _Compiled:
        # The native scan decides, per field, whether a left and a right occurrence pair (a
        # check, found as a key of its own); the places are listed only where one does.
        left, right = self.node(node.left, scope), self.node(node.right, scope)
        left_places, right_places = self._places(node.left, scope), self._places(node.right, scope)
        left_keys, right_keys = (
            self._side_keys(node.left, scope),
            self._side_keys(node.right, scope),
        )
        shared = tuple(field for field in left_keys if field in right_keys)
        key_id = self._new_id()
        texts = self.key_texts
        self.near_checks.append(
            NearCheck(
                key_id,
                node.distance,
                [
                    NearEntry(FIELDS.index(field), side, key, len(texts[key].split()))
                    for field in shared
                    for side, keys in ((0, left_keys[field]), (1, right_keys[field]))
                    for key in sorted(keys)
                ],
            )
        )
        fields_of = [(field, _BIT[field]) for field in shared]
        # The check is found only in fields both sides look at: fielded sides (author:x)
        # may narrow them to fields outside the NEAR's own scope.
        distance, mask, slot = node.distance, _mask(shared), self._slot(node, scope)

        def evaluation(found: _Found) -> Evaluation:
            flags = found.flags[key_id]
            fields = {field for field, bit in fields_of if flags & bit}
            return near(left_places(found, fields), right_places(found, fields), distance)

        def matched(found: _Found) -> int:
            return found.flags[key_id] & mask and found.evaluation(slot, evaluation).matched

        def hits(found: _Found) -> tuple[str, ...]:
            return found.evaluation(slot, evaluation).hits

        # Rarer than either side, as both must occur near each other.
        cost = 0.1 * min(sum(c.cost for c in left.clauses), sum(c.cost for c in right.clauses))
        clause = _Clause(frozenset({(self._scope(shared), key_id)}), cost)
        return _Compiled(matched, hits, (clause,), exact=False)

    def _places(self, node: Node, scope: _Scope) -> _Places:
        """Where a side of NEAR occurs, in the order the reference evaluator lists them."""
        match node:
            case Term(token=token, prefix=True):
                return _prefix_places(scope, self.keys[f" {token}"], f" {token}")
            case Term(token=token):
                key = f" {token} "
                return _sequence_places(scope, ((self.keys[key], key, 1, node.label),))
            case Phrase(tokens=tokens):
                key = _key(tokens)
                return _sequence_places(scope, ((self.keys[key], key, len(tokens), node.label),))
            case Entity(aliases=aliases):
                labelled = tuple(
                    (self.keys[_key(alias)], _key(alias), len(alias), node.label(index))
                    for index, alias in enumerate(aliases)
                )
                return _sequence_places(scope, labelled)
            case Or(children=children):
                sides = [self._places(child, scope) for child in children]
                return lambda found, fields: [
                    place for side in sides for place in side(found, fields)
                ]
            case Field(field=field, child=child):
                return self._places(child, (field,))
            case _:
                raise ValueError(f"{type(node).__name__} cannot be a side of NEAR")

    def _side_keys(self, node: Node, scope: _Scope) -> dict[str, frozenset[int]]:
        """Per field, the key ids of a side of NEAR: it occurs in no field without one."""
        match node:
            case Term(token=token, prefix=True):
                return dict.fromkeys(scope, frozenset({self.keys[f" {token}"]}))
            case Term(token=token):
                return dict.fromkeys(scope, frozenset({self.keys[f" {token} "]}))
            case Phrase(tokens=tokens):
                return dict.fromkeys(scope, frozenset({self.keys[_key(tokens)]}))
            case Entity(aliases=aliases):
                return dict.fromkeys(scope, frozenset(self.keys[_key(alias)] for alias in aliases))
            case Or(children=children):
                merged: dict[str, frozenset[int]] = {}
                for child in children:
                    for field, keys in self._side_keys(child, scope).items():
                        merged[field] = merged.get(field, frozenset()) | keys
                return merged
            case Field(field=field, child=child):
                return self._side_keys(child, (field,))
            case _:
                raise ValueError(f"{type(node).__name__} cannot be a side of NEAR")


def _key(tokens: Sequence[str]) -> str:
    return f" {' '.join(tokens)} "


def _cost(tokens: Sequence[str]) -> float:
    # Longer tokens are rarer, and each further token of a phrase makes it rarer still.
    return min(1.0 / len(token) for token in tokens) * 0.1 ** (len(tokens) - 1)


def _cost_of(clause: _Clause) -> float:
    return clause.cost


def _labels(children: Sequence[_Compiled]) -> tuple[str, ...] | None:
    """The hits of an AND whose children all have constant hits, else None."""
    if any(child.labels is None for child in children):
        return None
    return distinct(label for child in children for label in child.labels or ())


def _either(children: Sequence[_Compiled]) -> _Compiled:
    """An OR (or a rule's queries): one clause, a key of some child's clause."""
    if len(children) == 1:
        return children[0]
    matched = _any([child.matched for child in children])
    hits = _matched_hits(children)
    if any(not child.clauses for child in children):
        return _Compiled(matched, hits, (), exact=False)  # a child matches without any key
    # Each child's cheapest clause: exact when each child is exactly its only clause.
    chosen = [min(child.clauses, key=_cost_of) for child in children]
    exact = all(child.exact and len(child.clauses) == 1 for child in children)
    return _Compiled(matched, hits, (functools.reduce(operator.or_, chosen),), exact)


def _all(predicates: Sequence[_Predicate]) -> _Predicate:
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda found: first(found) and second(found)
    return lambda found: all(predicate(found) for predicate in predicates)


def _any(predicates: Sequence[_Predicate]) -> _Predicate:
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda found: first(found) or second(found)
    return lambda found: any(predicate(found) for predicate in predicates)


# --- hits ----------------------------------------------------------------------------------


def _constant(*hits: str) -> _Hits:
    return lambda found: hits


def _all_hits(children: Sequence[_Hits]) -> _Hits:
    """An AND that matched: every child matched; their hits in order."""
    return lambda found: distinct(itertools.chain.from_iterable(hits(found) for hits in children))


def _matched_hits(children: Sequence[_Compiled]) -> _Hits:
    """An OR that matched (or a rule): the hits of every child that matched."""
    if len(children) == 1:
        return children[0].hits
    keyed = [
        (*child.keyed, child.labels)
        for child in children
        if child.keyed is not None and child.labels is not None
    ]
    if len(keyed) == len(children):
        # The common OR of words: each child's keys tested inline, no call per child.

        def hits(found: _Found) -> tuple[str, ...]:
            flags = found.flags
            found_labels: list[str] = []
            for keys, mask, labels in keyed:
                for key in keys:
                    if flags[key] & mask:
                        found_labels.extend(labels)
                        break
            return tuple(found_labels) if len(found_labels) == 1 else distinct(found_labels)

        return hits
    if all(child.labels is not None for child in children):
        labelled = [(child.matched, child.labels or ()) for child in children]
        return lambda found: distinct(
            label for matched, labels in labelled if matched(found) for label in labels
        )
    return lambda found: distinct(
        itertools.chain.from_iterable(
            child.hits(found) for child in children if child.matched(found)
        )
    )


def _prefix_hits(scope: _Scope, key_id: int, key: str) -> _Hits:
    """The tokens that start with the prefix, in the order they first occur."""

    def hits(found: _Found) -> tuple[str, ...]:
        return distinct(
            padded[start + 1 : padded.index(" ", start + 1)]
            for field in scope
            if found.flags[key_id] & _BIT[field]
            for padded in (found.text.padded(field),)
            for start in _starts(padded, key)
        )

    return hits


def _entity_hits(scope: _Scope, aliases: tuple[tuple[int, str, str], ...], slot: int) -> _Hits:
    """The aliases found, as (key id, key, label); one inside another found counts once."""
    mask = _mask(scope)
    fields = tuple((field, _BIT[field]) for field in scope)

    def hits(found: _Found) -> tuple[str, ...]:
        return found.evaluation(slot, evaluation).hits

    def evaluation(found: _Found) -> Evaluation:
        # Loops written out: this runs for most entries that name a frequent entity.
        flags = found.flags
        present = [label for key_id, _, label in aliases if flags[key_id] & mask]
        if len(present) == 1:  # one alias in all: where it occurs cannot change the hits
            return Evaluation(True, (present[0],))
        labels: list[str] = []
        for field, bit in fields:
            here = [alias for alias in aliases if flags[alias[0]] & bit]
            if len(here) > 1:
                order = outermost(found.text.padded(field), tuple([alias[1] for alias in here]))
                labels += [here[index][2] for index in order]
            elif here:
                labels.append(here[0][2])
        return Evaluation(True, distinct(labels))

    return hits


def _sequence_places(scope: _Scope, sequences: tuple[tuple[int, str, int, str], ...]) -> _Places:
    """Occurrences of sequences given as (key id, key, token count, label); per field by start."""

    def places(found: _Found, fields: Collection[str]) -> list[Occurrence]:
        occurrences = []
        for field in scope:
            if field not in fields:
                continue
            flags, bit = found.flags, _BIT[field]
            padded = found.text.padded(field)
            in_field = [
                Occurrence(field, first, first + size - 1, label)
                for key_id, key, size, label in sequences
                if flags[key_id] & bit
                for _, first in _token_starts(padded, key)
            ]
            if len(sequences) > 1:
                in_field.sort(key=lambda occurrence: occurrence.start)
            occurrences.extend(in_field)
        return occurrences

    return places


def _prefix_places(scope: _Scope, key_id: int, key: str) -> _Places:
    def places(found: _Found, fields: Collection[str]) -> list[Occurrence]:
        return [
            Occurrence(field, first, first, padded[start + 1 : padded.index(" ", start + 1)])
            for field in scope
            if field in fields and found.flags[key_id] & _BIT[field]
            for padded in (found.text.padded(field),)
            for start, first in _token_starts(padded, key)
        ]

    return places


def _token_starts(padded: str, key: str) -> Iterator[tuple[int, int]]:
    """(index in ``padded``, token position) of each occurrence of ``key``."""
    position = 0
    counted = 0  # the spaces before ``counted`` are in ``position``
    for start in _starts(padded, key):
        position += padded.count(" ", counted, start)
        counted = start
        yield start, position


def _starts(text: str, key: str) -> Iterator[int]:
    """Every index where ``key`` starts in ``text``, overlapping ones included."""
    start = text.find(key)
    while start != -1:
        yield start
        start = text.find(key, start + 1)
