"""The compiled matcher agrees with the reference evaluator: which rules match, and their terms."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.entries import entry
from watcher.models import Entry, Match, Rule
from watcher.rules.compiled import CompiledRules
from watcher.rules.matcher import EntryText, RuleSet, evaluate
from watcher.rules.query import parse_query

ENTITIES = {
    "Putin": ["Vladimir Putin", "Putin", "Путин"],
    "Trump": ["Donald Trump", "Trump"],
    "Talks": ["peace talks", "Talks"],
}

# Entries are written with few words, so that queries built from the same words match often.
WORDS = ["Putin", "putin", "Trump", "talks", "peace", "sanctions", "sanctioned", "a", "b"]
TEXT_WORDS = [*WORDS, "Vladimir", "Donald", "Путин", "Peace-talks", "x"]
QUERY_WORDS = ["putin", "trump", "talks", "peace", "sanctions", "a", "b", "Peace-Talks"]
PREFIXES = ["sanction*", "pea*", "t*", "putin*", "a*"]
PHRASES = ['"peace talks"', '"vladimir putin"', '"a b"', '"talks a"', '"putin trump"']
PATTERNS = [r"/pea.e/", r"/t[a-z]+s/", r"/putin \w+/", r"/\bsanction/", r"/x*/", r"/^a/", "/b$/"]
FIELDS = ["title", "summary", "content", "author", "category"]


def _entries(text: st.SearchStrategy[str]) -> st.SearchStrategy[Entry]:
    return st.builds(
        lambda title, summary, content, author, categories: entry(
            title, summary, content, author=author, categories=tuple(categories)
        ),
        text,
        text,
        text,
        text,
        st.lists(text, max_size=3),
    )


words = st.lists(st.sampled_from(TEXT_WORDS), max_size=8).map(" ".join)
entries = _entries(words)

sides = st.one_of(
    st.sampled_from(QUERY_WORDS + PREFIXES + PHRASES + ["@Putin", "@Trump", "@Talks"]),
)
leaves = st.one_of(sides, st.sampled_from(PATTERNS))


def _fielded(leaf: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        leaf, st.tuples(st.sampled_from(FIELDS), leaf).map(lambda pair: f"{pair[0]}:{pair[1]}")
    )


near_sides = st.one_of(
    _fielded(sides),
    st.lists(sides, min_size=2, max_size=3).map(lambda items: "(" + " OR ".join(items) + ")"),
)


def _combined(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, inner).map(lambda pair: f"{pair[0]} AND {pair[1]}"),
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]} OR {pair[1]})"),
        st.tuples(inner, inner).map(lambda pair: f"{pair[0]} {pair[1]}"),
        inner.map(lambda query: f"NOT ({query})"),
        inner.map(lambda query: f"-({query})"),
        st.tuples(near_sides, st.integers(1, 4), near_sides).map(
            lambda near: f"{near[0]} NEAR/{near[1]} {near[2]}"
        ),
    )


nested = st.recursive(_fielded(leaves), _combined, max_leaves=6)
# Flat conjunctions and disjunctions of up to 5 operands, each often a small AND, OR or NOT
# itself: a rule of many clauses, clauses of several keys, and ORs of ANDs, whose matches
# the clauses alone do not decide.
small = st.one_of(
    _fielded(leaves),
    st.lists(_fielded(leaves), min_size=2, max_size=3).map(" AND ".join),
    st.lists(_fielded(leaves), min_size=2, max_size=3).map(" OR ".join),
    _fielded(leaves).map(lambda leaf: f"-{leaf}"),
    nested,
)
flat = st.tuples(
    st.sampled_from([" AND ", " ", " OR "]), st.lists(small, min_size=2, max_size=5)
).map(lambda pair: pair[0].join(f"({operand})" for operand in pair[1]))
queries = nested | flat
rule_sets = st.lists(st.lists(queries, min_size=1, max_size=2), min_size=1, max_size=8)


def _reference_indexes(rules: RuleSet, text: EntryText) -> list[int]:
    parsed = [[parse_query(query, ENTITIES) for query in rule.queries] for rule in rules.rules]
    return [
        index
        for index, nodes in enumerate(parsed)
        if any(evaluate(node, text).matched for node in nodes)
    ]


def test_compiled_matcher_agrees_with_the_reference_evaluator() -> None:
    outcomes: list[tuple[int, int]] = []  # (rules matched, rules) per example

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(rule_sets, st.lists(entries, min_size=1, max_size=4))
    def check(query_lists: list[list[str]], items: list[Entry]) -> None:
        rules = RuleSet.compile(
            [
                Rule(name=f"r{index}", queries=tuple(found), notify=())
                for index, found in enumerate(query_lists)
            ],
            ENTITIES,
        )
        compiled = CompiledRules(
            [[parse_query(query, ENTITIES) for query in found] for found in query_lists]
        )
        for item in items:
            text = EntryText.from_entry(item)
            expected: list[Match] = rules.match_text_reference(text, "key", "Feed")
            assert rules.match_text(text, "key", "Feed") == expected
            assert rules.match(item) == expected
            indexes = _reference_indexes(rules, text)
            assert compiled.matching(text) == indexes
            outcomes.append((len(indexes), len(query_lists)))

    check()
    # The property means little unless both outcomes are common: rules that match (with
    # their terms compared) and rules that do not.
    matched = sum(found for found, _ in outcomes)
    total = sum(count for _, count in outcomes)
    assert matched >= 0.2 * total
    assert total - matched >= 0.2 * total
    assert sum(1 for found, _ in outcomes if found) >= 0.4 * len(outcomes)


# Terms, phrases, prefixes and entities under AND and OR only: rules the clauses decide
# without a predicate, so every way of getting the clauses wrong shows.
plain = st.recursive(
    _fielded(sides),
    lambda inner: st.lists(inner, min_size=2, max_size=3).flatmap(
        lambda operands: st.sampled_from([" AND ", " OR "]).map(
            lambda operator: "(" + operator.join(operands) + ")"
        )
    ),
    max_leaves=8,
)


def test_rules_of_plain_terms_match_like_the_reference() -> None:
    outcomes: list[bool] = []

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(plain, min_size=1, max_size=6), st.lists(entries, min_size=1, max_size=4))
    def check(query_list: list[str], items: list[Entry]) -> None:
        rules = RuleSet.compile(
            [Rule(name=f"r{i}", queries=(query,), notify=()) for i, query in enumerate(query_list)],
            ENTITIES,
        )
        compiled = CompiledRules([[parse_query(query, ENTITIES)] for query in query_list])
        for item in items:
            text = EntryText.from_entry(item)
            indexes = _reference_indexes(rules, text)
            assert compiled.matching(text) == indexes
            assert rules.match_text(text, "key", "Feed") == rules.match_text_reference(
                text, "key", "Feed"
            )
            outcomes.extend(index in indexes for index in range(len(query_list)))

    check()
    assert 0.2 * len(outcomes) <= sum(outcomes) <= 0.8 * len(outcomes)


@settings(max_examples=200, deadline=None)
@given(st.lists(queries, min_size=1, max_size=6), entries)
def test_a_rule_set_matches_like_each_rule_alone(query_list: list[str], item: Entry) -> None:
    rules = [
        Rule(name=f"r{index}", queries=(query,), notify=())
        for index, query in enumerate(query_list)
    ]
    together = RuleSet.compile(rules, ENTITIES).match(item)
    alone = [found for rule in rules for found in RuleSet.compile([rule], ENTITIES).match(item)]
    assert together == alone


def test_rules_that_need_no_term_are_still_evaluated() -> None:
    rules = RuleSet.compile(
        [
            Rule(name="quiet", queries=("NOT trump",), notify=()),
            Rule(name="either", queries=("putin", "-(a OR b)"), notify=()),
            Rule(name="putin", queries=("putin",), notify=()),
        ],
        ENTITIES,
    )
    assert [found.rule for found in rules.match(entry("Trump a"))] == []
    assert [found.rule for found in rules.match(entry("news"))] == ["quiet", "either"]
    assert rules.match(entry("Putin")) == [
        Match("quiet", "key", ()),
        Match("either", "key", ("putin",)),
        Match("putin", "key", ("putin",)),
    ]


def test_matching_lists_rule_indexes_in_order() -> None:
    queries = [
        ["zebra"],
        ["putin"],
        ["b"],
        ["@Putin NEAR/2 talks"],
        ["NOT putin"],
        ["a AND b AND putin AND talks"],
    ]
    compiled = CompiledRules(
        [[parse_query(query, ENTITIES) for query in found] for found in queries]
    )
    text = EntryText.from_entry(entry("Putin talks a b"))
    assert compiled.matching(text) == [1, 2, 3, 5]
    assert compiled.matches(text, applies=lambda index: index != 2) == [
        (1, ("putin",)),
        (3, ("Putin", "talks")),
        (5, ("a", "b", "putin", "talks")),
    ]


def test_an_empty_rule_list_matches_nothing() -> None:
    assert CompiledRules([]).matching(EntryText.from_entry(entry("Putin"))) == []


# Long texts, so that NEAR's sides are often both present but far apart: the window check
# that rejects those before listing places must never reject a pair the reference finds.
long_words = st.lists(st.sampled_from([*TEXT_WORDS, "y", "z", "w"]), max_size=40).map(" ".join)
long_entries = _entries(long_words)
near_queries = st.tuples(near_sides, st.integers(1, 6), near_sides).map(
    lambda near: f"{near[0]} NEAR/{near[1]} {near[2]}"
)


def test_near_over_long_texts_matches_like_the_reference() -> None:
    outcomes: list[bool] = []

    @settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(near_queries, min_size=1, max_size=4), st.lists(long_entries, max_size=4))
    def check(query_list: list[str], items: list[Entry]) -> None:
        rules = RuleSet.compile(
            [Rule(name=f"r{i}", queries=(query,), notify=()) for i, query in enumerate(query_list)],
            ENTITIES,
        )
        for item in items:
            text = EntryText.from_entry(item)
            expected = rules.match_text_reference(text, "key", "Feed")
            assert rules.match_text(text, "key", "Feed") == expected
            outcomes.extend(
                any(match.rule == f"r{index}" for match in expected)
                for index in range(len(query_list))
            )

    check()
    # Both outcomes must be common for the property to mean much; about 10% match, and
    # Hypothesis draws anew each run, so the floor leaves room (one run gave 9.8%).
    assert sum(outcomes) >= 0.04 * len(outcomes)
    assert len(outcomes) - sum(outcomes) >= 0.5 * len(outcomes)


@pytest.mark.parametrize("distance", [1, 2, 5])
@pytest.mark.parametrize("gap", [0, 1, 2])  # past the distance
@pytest.mark.parametrize("phrase_first", [True, False])
def test_near_pairs_a_phrase_at_the_edge_of_the_distance(
    distance: int, gap: int, phrase_first: bool
) -> None:
    # "vladimir putin" is the side looked for first; "peace talks" must be found around it
    # though it is two tokens long, on either side, at exactly the distance and beyond.
    between = " ".join(["w"] * (distance - 1 + gap))
    sides = ["peace talks", between, "vladimir putin"]
    content = " ".join(side for side in (sides if phrase_first else sides[::-1]) if side)
    rules = RuleSet.compile(
        [Rule(name="r", queries=(f'"peace talks" NEAR/{distance} "vladimir putin"',), notify=())],
        ENTITIES,
    )
    text = EntryText.from_entry(entry(f"x {content} y"))
    expected = rules.match_text_reference(text, "key", "Feed")
    assert bool(expected) == (gap == 0)
    assert rules.match_text(text, "key", "Feed") == expected


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("author:putin NEAR/1 author:talks", True),
        ("NOT (author:putin NEAR/1 author:talks)", False),
        ("title:putin NEAR/1 author:talks", False),  # sides in different fields never pair
        ("NOT (title:putin NEAR/1 author:talks)", True),
        ("putin NEAR/1 talks", False),  # the default fields do not hold the author
    ],
)
def test_near_of_fielded_sides_is_decided_in_their_fields(query: str, matches: bool) -> None:
    rules = RuleSet.compile([Rule(name="r", queries=(query,), notify=())], ENTITIES)
    text = EntryText.from_entry(entry("putin", "", "", author="Peace-talks Putin"))
    expected = rules.match_text_reference(text, "key", "Feed")
    assert bool(expected) == matches
    assert rules.match_text(text, "key", "Feed") == expected
