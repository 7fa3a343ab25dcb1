"""The native key scan (watcher/rules/_keyscan.c, laid out by watcher.rules.keyscan).

Held to a plain Python statement of what it computes: the keys that occur in each field's
text, and the rules each of whose clauses has one of its (field, key) pairs found.
"""

from __future__ import annotations

import dataclasses
import gc
from array import array
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.rules._keyscan import KeyScanner
from watcher.rules.keyscan import KeyIndex, NearCheck, NearEntry, outermost

Clause = frozenset[tuple[int, int]]


def expected(
    texts: Sequence[str | None],
    extra: Sequence[Sequence[int]],
    *,
    keys: dict[str, int],
    key_count: int,
    clauses: Sequence[Clause],
    rules: Sequence[frozenset[int]],
    near_checks: Sequence[NearCheck] = (),
) -> tuple[list[int], list[set[int]]]:
    by_id = {key_id: key for key, key_id in keys.items()}
    found = [
        {key_id for key, key_id in keys.items() if text is not None and key in text}
        | {key for key in more if 0 <= key < key_count}
        | {
            check.key
            for check in near_checks
            if text is not None and pairs(check, field, text, by_id)
        }
        for field, (text, more) in enumerate(zip(texts, extra, strict=True))
    ]
    satisfied = {
        clause_id
        for clause_id, clause in enumerate(clauses)
        if any(key in found[field] for field, key in clause)
    }
    candidates = [index for index, need in enumerate(rules) if need and need <= satisfied]
    return candidates, found


def pairs(check: NearCheck, field: int, text: str, texts: dict[int, str]) -> bool:
    """Whether a left and a right occurrence in ``text`` are near, as reference.near says:
    positions count tokens (the spaces before a key's leading space), overlaps never pair."""
    sides: list[list[tuple[int, int]]] = [[], []]
    for entry in check.entries:
        if entry.field != field:
            continue
        key = texts[entry.key]
        starts = [at for at in range(len(text)) if text.startswith(key, at)]
        sides[entry.side].extend(
            (text.count(" ", 0, at), text.count(" ", 0, at) + entry.length - 1) for at in starts
        )
    return any(
        0 < right_start - left_end <= check.distance or 0 < left_start - right_end <= check.distance
        for left_start, left_end in sides[0]
        for right_start, right_end in sides[1]
    )


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


def ints(*values: int) -> array[int]:
    return array("i", values)


def scanner(**tables: object) -> KeyScanner:
    """A scanner of one field and one key (a space), with ``tables`` replacing the defaults."""
    arguments: dict[str, object] = {
        "n_keys": 1,
        "edge_start": ints(0, 0),
        "edge_label": b"",
        "edge_target": ints(),
        "node_key": ints(-1),
        "field_key_start": (ints(0, 0),),
        "field_key_clause": (ints(),),
        "clause_rule_start": ints(0),
        "clause_rule": ints(),
        "rule_need": ints(),
        "near_key": ints(),
        "near_distance": ints(),
        "near_entry_start": ints(0),
        "near_entry": ints(),
    }
    arguments.update(tables)
    return KeyScanner(**arguments)  # type: ignore[arg-type]


def test_inconsistent_tables_are_refused() -> None:
    scanner()  # the defaults are consistent
    with pytest.raises(ValueError, match="edge_target"):
        scanner(edge_start=ints(0, 1), edge_label=b" ", edge_target=ints(7))
    with pytest.raises(ValueError, match="node_key"):
        scanner(node_key=ints(5))
    with pytest.raises(ValueError, match="clause_rule"):
        scanner(clause_rule_start=ints(0, 1), clause_rule=ints(3), rule_need=ints(1))
    with pytest.raises(ValueError, match="only edge must be a space"):
        scanner(
            edge_start=ints(0, 1, 1), edge_label=b"x", edge_target=ints(1), node_key=ints(-1, 0)
        )
    with pytest.raises(ValueError, match="at most 8"):
        KeyIndex({}, 0, 9, [], [])
    with pytest.raises(ValueError, match="n_keys out of range"):
        scanner(n_keys=1 << 30)  # a bit of node_key marks the keys NEAR looks at
    with pytest.raises(TypeError, match="array"):
        scanner(edge_start=array("q", [0, 0]))
    with pytest.raises(ValueError, match="near_key"):
        scanner(near_key=ints(3), near_distance=ints(1), near_entry_start=ints(0, 0))
    with pytest.raises(ValueError, match="one per check"):
        scanner(near_key=ints(0), near_distance=ints(), near_entry_start=ints(0, 0))
    with pytest.raises(ValueError, match=r"near_entry\[0\]"):
        scanner(
            near_key=ints(0),
            near_distance=ints(1),
            near_entry_start=ints(0, 1),
            near_entry=ints(1, 0, 0, 1),  # field 1 of 1
        )
    with pytest.raises(ValueError, match="not sorted"):
        scanner(
            near_key=ints(0),
            near_distance=ints(1),
            near_entry_start=ints(0, 2),
            near_entry=ints(0, 1, 0, 1, 0, 0, 0, 1),  # right side before left
        )


def test_a_node_whose_only_edge_skips_ahead_is_read_as_a_sparse_one() -> None:
    # Node 0 leads to node 2 by its only edge (a space), and so does node 1, unreachable:
    # only a node's edge to the next node is stepped along without an edge table.
    index = scanner(
        n_keys=1,
        edge_start=ints(0, 1, 2, 2),
        edge_label=b"  ",
        edge_target=ints(2, 2),
        node_key=ints(-1, -1, 0),
        field_key_start=(ints(0, 1),),
        field_key_clause=(ints(0),),
        clause_rule_start=ints(0, 1),
        clause_rule=ints(0),
        rule_need=ints(1),
    )
    assert index.scan((" a ",)) == ([0], bytes([1]))


def test_a_near_check_is_found_where_its_sides_lie_close_enough() -> None:
    keys = {" putin ": 0, " vladimir putin ": 1, " talks ": 2}
    # Check key 3: @Putin NEAR/2 talks, in field 0 only.
    check = NearCheck(3, 2, [NearEntry(0, 0, 0, 1), NearEntry(0, 0, 1, 2), NearEntry(0, 1, 2, 1)])
    index = KeyIndex(keys, 4, 2, [frozenset({(0, 3)})], [frozenset({0})], near_checks=[check])
    near = [
        " vladimir putin x x talks ",  # 2 tokens between the end and talks: too far
        " talks x vladimir putin ",  # 1 before the start
        " vladimir putin talks ",  # adjacent
    ]
    assert [scanned(index, [text, None])[1][0] for text in near] == [
        {0, 1, 2},
        {0, 1, 2, 3},
        {0, 1, 2, 3},
    ]
    assert scanned(index, [" talks x putin ", None]) == ([0], [{0, 2, 3}, set()])
    # The same text in field 1, which the check does not look at; one side alone.
    assert scanned(index, [None, " putin talks "]) == ([], [set(), {0, 2}])
    assert scanned(index, [" putin putin ", None]) == ([], [{0}, set()])


# --- held to the plain statement on random keys, texts and rules -------------------------

# Six letters, so that a node can have more edges than a sparse one holds (a dense row);
# texts also have "z", a byte on no key's edge.
KEY_LETTERS = "abcdeé"
tokens = st.text(alphabet=KEY_LETTERS, min_size=1, max_size=3)
text_tokens = st.text(alphabet=KEY_LETTERS + "z", min_size=1, max_size=3)
phrase_keys = st.lists(tokens, min_size=1, max_size=3).map(lambda words: f" {' '.join(words)} ")
prefix_keys = tokens.map(lambda token: f" {token}")
texts = st.one_of(
    st.none(),
    st.lists(text_tokens, max_size=12).map(lambda words: f" {' '.join(words)} "),
    st.text(alphabet=KEY_LETTERS + "z ", max_size=20),
)


@dataclasses.dataclass
class Case:
    keys: dict[str, int]
    key_count: int
    fields: int
    clauses: list[Clause]
    rules: list[frozenset[int]]
    near_checks: list[NearCheck]
    entries: list[list[str | None]]


@st.composite
def near_checks(draw: st.DrawFn, keys: list[str], first_id: int, fields: int) -> list[NearCheck]:
    """Up to 3 checks, with ids from ``first_id``, over the keys that have text."""
    if not keys:
        return []
    entry = st.builds(
        lambda field, side, key: NearEntry(field, side, key, len(keys[key].split())),
        st.integers(0, fields - 1),
        st.integers(0, 1),
        st.integers(0, len(keys) - 1),
    )
    count = draw(st.integers(0, 3))
    return [
        NearCheck(first_id + index, draw(st.integers(0, 3)), draw(st.lists(entry, max_size=5)))
        for index in range(count)
    ]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    keys = draw(st.lists(st.one_of(phrase_keys, prefix_keys), unique=True, max_size=16))
    key_ids = {key: index for index, key in enumerate(keys)}
    key_count = len(keys) + draw(st.integers(0, 2))  # ids without text: found by RE2
    fields = draw(st.integers(1, 3))
    checks = draw(near_checks(keys, key_count, fields))
    key_count += len(checks)
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
    return Case(key_ids, key_count, fields, clauses, rules, checks, entries)


@given(cases(), st.data())
@settings(max_examples=500, deadline=None)
def test_agrees_with_the_plain_statement(case: Case, data: st.DataObject) -> None:
    index = KeyIndex(
        case.keys,
        case.key_count,
        case.fields,
        case.clauses,
        case.rules,
        near_checks=case.near_checks,
    )
    for texts_of_entry in case.entries:
        extra = [
            data.draw(st.lists(st.integers(-1, case.key_count + 1), max_size=3))
            for _ in texts_of_entry
        ]
        assert scanned(index, texts_of_entry, extra) == expected(
            texts_of_entry,
            extra,
            keys=case.keys,
            key_count=case.key_count,
            clauses=case.clauses,
            rules=case.rules,
            near_checks=case.near_checks,
        )


def test_scratch_grows_past_its_first_size() -> None:
    # 300 distinct keys found in one field (the found list starts with room for 256), and
    # a NEAR side occurring 500 times (room for 64 occurrences at first).
    keys = {f" k{index} ": index for index in range(300)} | {" a ": 300, " b ": 301}
    check = NearCheck(302, 1, [NearEntry(0, 0, 300, 1), NearEntry(0, 1, 301, 1)])
    index = KeyIndex(keys, 303, 1, [frozenset({(0, 302)})], [frozenset({0})], near_checks=[check])
    many = " ".join(f"k{number}" for number in range(300))
    near_end = f" {many} {' x '.join(['a'] * 500)} b "
    far = f" {many} {' x '.join(['a'] * 500)} x b "
    assert scanned(index, [near_end]) == ([0], [set(range(303))])
    assert scanned(index, [far]) == ([], [set(range(302))])


# --- outermost occurrences (entity hits) --------------------------------------------------


def plain_outermost(text: str, keys: Sequence[str]) -> list[int]:
    """Every occurrence as (start, end, key); sorted by start, the longer and then the
    earlier key first, an occurrence is outermost unless one before reaches its end."""
    spans = sorted(
        (start, -(start + len(key)), index)
        for index, key in enumerate(keys)
        for start in range(len(text))
        if text.startswith(key, start)
    )
    order: list[int] = []
    reach = -1
    for _, negative_end, index in spans:
        if -negative_end > reach:
            reach = -negative_end
            if index not in order:
                order.append(index)
    return order


def test_outermost_keeps_an_alias_only_where_no_longer_one_holds_it() -> None:
    keys = (" putin ", " vladimir putin ")
    assert outermost(" vladimir putin met putin ", keys) == [1, 0]
    assert outermost(" putin then vladimir putin ", keys) == [0, 1]
    assert outermost(" vladimir putin ", keys) == [1]
    assert outermost(" a a a ", (" a ", " a a ")) == [1]
    assert outermost(" путин и putin ", (" путин ", " putin ")) == [0, 1]
    assert outermost(" x \ud800 y ", (" \ud800 ", " y ")) == [0, 1]  # lone surrogates
    assert outermost(" x ", ()) == []
    assert outermost(" a" * 100 + " ", (" a ", " a a ")) == [1]  # 199 occurrences: grown


def test_outermost_refuses_wrong_inputs() -> None:
    with pytest.raises(ValueError, match="empty key"):
        outermost(" a ", ("",))
    with pytest.raises(TypeError):
        outermost(" a ", [" a "])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tuple of str"):
        outermost(" a ", (b" a ",))  # type: ignore[arg-type]


@given(st.lists(phrase_keys, max_size=5), texts.filter(lambda text: text is not None))
@settings(max_examples=300, deadline=None)
def test_outermost_agrees_with_the_plain_statement(keys: list[str], text: str | None) -> None:
    assert text is not None
    assert outermost(text, tuple(keys)) == plain_outermost(text, keys)
