"""The native key scan (watcher/rules/_keyscan.c, laid out by watcher.rules.keyscan).

Held to a plain Python statement of what it computes: the keys that occur in each field's
text, and the rules each of whose clauses has one of its (field, key) pairs found.
"""

from __future__ import annotations

import gc
from array import array
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.rules._keyscan import KeyScanner
from watcher.rules.keyscan import KeyIndex

Clause = frozenset[tuple[int, int]]


def expected(
    texts: Sequence[str | None],
    extra: Sequence[Sequence[int]],
    *,
    keys: dict[str, int],
    key_count: int,
    clauses: Sequence[Clause],
    rules: Sequence[frozenset[int]],
) -> tuple[list[int], list[set[int]]]:
    found = [
        {key_id for key, key_id in keys.items() if text is not None and key in text}
        | {key for key in more if 0 <= key < key_count}
        for text, more in zip(texts, extra, strict=True)
    ]
    satisfied = {
        clause_id
        for clause_id, clause in enumerate(clauses)
        if any(key in found[field] for field, key in clause)
    }
    candidates = [index for index, need in enumerate(rules) if need and need <= satisfied]
    return candidates, found


def scanned(
    index: KeyIndex, texts: Sequence[str | None], extra: Sequence[Sequence[int]] | None = None
) -> tuple[list[int], list[set[int]]]:
    more = None if extra is None else tuple(list(keys) for keys in extra)
    candidates, flags = index.scan(tuple(texts), more)
    assert all(byte < 1 << len(texts) for byte in flags), "a bit beyond the fields"
    return candidates, [
        {key for key, byte in enumerate(flags) if byte >> field & 1} for field in range(len(texts))
    ]


KEYS = {" putin ": 0, " vladimir putin ": 1, " sanc": 2, " зеленскии ": 3, " a a ": 4}
# Clause ids: @Putin in either field, "vladimir putin" in field 0, sanc* in field 1,
# зеленскии in field 0, "a a" in field 1.
CLAUSES = [
    frozenset({(0, 0), (1, 0), (0, 1), (1, 1)}),
    frozenset({(0, 1)}),
    frozenset({(1, 2)}),
    frozenset({(0, 3)}),
    frozenset({(1, 4)}),
]
RULES = [
    frozenset({0}),
    frozenset({0, 2}),
    frozenset({1}),
    frozenset({3}),
    frozenset(),
    frozenset({4}),
]


def small_index() -> KeyIndex:
    return KeyIndex(KEYS, 6, 2, CLAUSES, RULES)


def test_finds_every_key_and_the_rules_whose_clauses_all_hold() -> None:
    index = small_index()
    candidates, found = scanned(index, [" vladimir putin met ", " sanctions widen "])
    assert found == [{0, 1}, {2}]
    assert candidates == [0, 1, 2]


def test_keys_match_whole_tokens_and_prefixes_only_at_a_token_start() -> None:
    index = small_index()
    candidates, found = scanned(index, [" putinism ", " unsanctioned "])
    assert found == [set(), set()]
    assert candidates == []


def test_overlapping_occurrences_and_utf8_keys() -> None:
    index = small_index()
    candidates, found = scanned(index, [" зеленскии ", " a a a "])
    assert found == [{3}, {4}]
    assert candidates == [3, 5]


def test_a_field_not_scanned_and_keys_found_elsewhere() -> None:
    index = small_index()
    candidates, found = scanned(index, [None, " nothing "], [[-1, 2], [2, 99]])
    # -1 (RE2's sentinel) and ids beyond the keys are not keys; 2 counts in field 1 only.
    assert found == [{2}, {2}]
    assert candidates == []
    assert scanned(index, [None, None], [[0], []]) == ([0], [{0}, set()])


def test_each_call_starts_afresh() -> None:
    index = small_index()
    assert scanned(index, [" putin ", " sanc "])[0] == [0, 1]
    assert scanned(index, [" x ", " y "]) == ([], [set(), set()])
    assert scanned(index, [" y ", " putin "])[0] == [0]


def test_text_with_a_lone_surrogate_is_scanned_around_it() -> None:
    index = small_index()
    candidates, found = scanned(index, [" \udcff putin ", " a a "])
    assert found == [{0}, {4}]
    assert candidates == [0, 5]


def test_a_call_made_while_another_builds_its_results_gets_its_own_scratch() -> None:
    index = small_index()
    inner: list[tuple[list[int], list[set[int]]]] = []

    def during_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and len(inner) < 3:
            inner.append(scanned(index, [" x ", " sanctions "]))

    threshold = gc.get_threshold()
    gc.callbacks.append(during_collection)
    gc.set_threshold(1)  # every new list the scan builds may start a collection
    try:
        outer = [scanned(index, [" vladimir putin ", " sanc "]) for _ in range(20)]
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(during_collection)
    assert inner, "no collection ran during a scan"
    assert all(result == ([], [set(), {2}]) for result in inner)
    assert all(result == ([0, 1, 2], [{0, 1}, {2}]) for result in outer)


def test_wrong_inputs_are_refused() -> None:
    index = small_index()
    with pytest.raises(ValueError, match="tuple of 2"):
        index.scan((" putin ",))
    with pytest.raises(TypeError, match="str or None"):
        index.scan((b" putin ", None))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="start with a space"):
        KeyIndex({"putin ": 0}, 1, 1, [], [])


def test_inconsistent_tables_are_refused() -> None:
    def ints(*values: int) -> array[int]:
        return array("i", values)

    starts, clauses = (ints(0, 0),), (ints(),)  # one field, one key, no clauses
    with pytest.raises(ValueError, match="edge_target"):
        KeyScanner(1, ints(0, 1), b" ", ints(7), ints(-1), starts, clauses, ints(0), ints(), ints())
    with pytest.raises(ValueError, match="node_key"):
        KeyScanner(1, ints(0, 0), b"", ints(), ints(5), starts, clauses, ints(0), ints(), ints())
    with pytest.raises(ValueError, match="clause_rule"):
        KeyScanner(
            1, ints(0, 0), b"", ints(), ints(-1), starts, clauses, ints(0, 1), ints(3), ints(1)
        )
    with pytest.raises(ValueError, match="only edge must be a space"):
        KeyScanner(
            1, ints(0, 1, 1), b"x", ints(1), ints(-1, 0), starts, clauses, ints(0), ints(), ints()
        )
    with pytest.raises(ValueError, match="at most 8"):
        KeyIndex({}, 0, 9, [], [])
    with pytest.raises(TypeError, match="array"):
        KeyScanner(
            1, array("q", [0, 0]), b"", ints(), ints(-1), starts, clauses, ints(0), ints(), ints()
        )


# --- held to the plain statement on random keys, texts and rules -------------------------

ALPHABET = "ab é"
tokens = st.text(alphabet="abé", min_size=1, max_size=3)
phrase_keys = st.lists(tokens, min_size=1, max_size=3).map(lambda words: f" {' '.join(words)} ")
prefix_keys = tokens.map(lambda token: f" {token}")
texts = st.one_of(
    st.none(),
    st.lists(tokens, max_size=12).map(lambda words: f" {' '.join(words)} "),
    st.text(alphabet=ALPHABET, max_size=20),
)


Case = tuple[dict[str, int], int, int, list[Clause], list[frozenset[int]], list[list[str | None]]]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    keys = draw(st.lists(st.one_of(phrase_keys, prefix_keys), unique=True, max_size=12))
    key_ids = {key: index for index, key in enumerate(keys)}
    key_count = len(keys) + draw(st.integers(0, 2))  # ids without text: found by RE2
    fields = draw(st.integers(1, 3))
    pair = st.tuples(st.integers(0, fields - 1), st.integers(0, max(key_count - 1, 0)))
    clauses = (
        draw(st.lists(st.frozensets(pair, min_size=1, max_size=4), max_size=8)) if key_count else []
    )
    rules = draw(
        st.lists(st.frozensets(st.integers(0, len(clauses) - 1), max_size=3), max_size=10)
        if clauses
        else st.just([])
    )
    entries = draw(st.lists(st.lists(texts, min_size=fields, max_size=fields), max_size=4))
    return key_ids, key_count, fields, clauses, rules, entries


@given(cases(), st.data())
@settings(max_examples=400, deadline=None)
def test_agrees_with_the_plain_statement(case: Case, data: st.DataObject) -> None:
    keys, key_count, fields, clauses, rules, entries = case
    index = KeyIndex(keys, key_count, fields, clauses, rules)
    for texts_of_entry in entries:
        extra = [
            data.draw(st.lists(st.integers(-1, key_count + 1), max_size=3)) for _ in texts_of_entry
        ]
        assert scanned(index, texts_of_entry, extra) == expected(
            texts_of_entry, extra, keys=keys, key_count=key_count, clauses=clauses, rules=rules
        )
