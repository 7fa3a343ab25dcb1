"""/pattern/ terms: RE2 over each field's normalized text, through both matchers."""

from __future__ import annotations

import pytest

from tests.support.entries import entry
from watcher.models import Entry, Match, Rule
from watcher.rules.matcher import EntryText, RuleSet, evaluate
from watcher.rules.patterns import find_all, pattern_error
from watcher.rules.query import parse_query


def result(query: str, item: Entry) -> tuple[str, ...] | None:
    """The hits of ``query`` on ``item``, or None when it does not match; both matchers agree."""
    rules = RuleSet.compile([Rule(name="r", queries=(query,), notify=())], {})
    text = EntryText.from_entry(item)
    reference = evaluate(parse_query(query, {}), text)
    compiled = rules.match_text(text, "key", "Feed")
    assert compiled == rules.match_text_reference(text, "key", "Feed")
    assert compiled == ([Match("r", "key", reference.hits)] if reference.matched else [])
    return reference.hits if reference.matched else None


def test_a_pattern_runs_over_the_normalized_text() -> None:
    # Lower case, no accents, punctuation turned into single spaces.
    assert result("/putin trump/", entry("PUTIN–Trump: talks")) == ("putin trump",)
    assert result("/zelensky/", entry("Zelénsky")) == ("zelensky",)
    assert result("/u s president/", entry("U.S. President")) == ("u s president",)


def test_the_pattern_itself_is_not_normalized() -> None:
    assert result("/Putin/", entry("Putin")) is None
    assert result("/(?i)Putin/", entry("Putin")) == ("putin",)


def test_a_pattern_matches_inside_tokens_unlike_a_term() -> None:
    assert result("/trump/", entry("Trumpet")) == ("trump",)
    assert result(r"/\btrump\b/", entry("Trumpet")) is None


def test_hits_are_the_distinct_texts_matched_in_field_then_text_order() -> None:
    item = entry("New sanctions", "sanctioned goods and more sanctions", "a sanction")
    assert result(r"/sanction\w*/", item) == ("sanctions", "sanctioned", "sanction")


def test_unfielded_patterns_look_at_title_summary_and_content_only() -> None:
    assert result("/trump/", entry(author="Trump", categories=("Trump",))) is None
    assert result("/trump/", entry("", "", "trump")) == ("trump",)


def test_a_fielded_pattern_looks_at_its_field_only() -> None:
    item = entry("Putin", "Trump", author="Donald Trump")
    assert result("title:/putin|trump/", item) == ("putin",)
    assert result("author:/^donald/", item) == ("donald",)
    assert result("title:/trump/", item) is None


def test_a_pattern_never_spans_two_fields() -> None:
    assert result("/putin trump/", entry("Putin", "Trump")) is None


def test_a_pattern_never_spans_two_categories_and_anchors_apply_to_each() -> None:
    item = entry(categories=("World news", "Trump"))
    assert result("category:/news trump/", item) is None
    assert result("category:/^trump$/", item) == ("trump",)
    assert result("category:/^world news$/", item) == ("world news",)


def test_empty_matches_do_not_count() -> None:
    assert result("/x*/", entry("abc")) is None
    assert result("/x*/", entry("a xx b x")) == ("xx", "x")
    assert result(r"/\b/", entry("abc")) is None


def test_patterns_combine_like_terms_and_hits_leave_out_negated_ones() -> None:
    item = entry("Putin meets Trump", "in 2025")
    assert result(r"putin /\d{4}/", item) == ("putin", "2025")
    assert result(r"putin -/\d{4}/", item) is None
    assert result(r"trump -/\d{5}/", item) == ("trump",)
    assert result(r"/\d{5}/ OR trump", item) == ("trump",)


def test_the_same_pattern_in_two_rules_is_run_once_per_entry_and_gives_both() -> None:
    rules = RuleSet.compile(
        [
            Rule(name="a", queries=("/tr.mp/",), notify=()),
            Rule(name="b", queries=("title:/tr.mp/ putin",), notify=()),
        ],
        {},
    )
    assert rules.match(entry("Putin and Trump")) == [
        Match("a", "key", ("trump",)),
        Match("b", "key", ("trump", "putin")),
    ]


def test_many_patterns_in_one_rule_set() -> None:
    # More patterns than one RE2 Set holds: every one still answers for itself.
    count = 1500
    rules = RuleSet.compile(
        [Rule(name=f"r{index}", queries=(f"/w{index}x/",), notify=()) for index in range(count)],
        {},
    )
    item = entry("w7x w1499x", "w1024x")
    assert [found.rule for found in rules.match(item)] == ["r7", "r1024", "r1499"]


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("a+", "baaab aa", ["aaa", "aa"]),
        ("x*", "ab", []),
        ("é", "café", ["é"]),
        # Found over UTF-8 bytes: after an empty match the search moves on by one byte,
        # and what it finds is still whole characters.
        ("[а-я]*", "зеленскии и é", ["зеленскии", "и"]),
        ("é*", "éé x é", ["éé", "é"]),
        (r"\b.", "a é b", ["a", " ", "b"]),  # a boundary after "a" too
        (r"\w+", "зеленскии and é", ["and"]),  # RE2's \w is ASCII
    ],
)
def test_find_all_gives_the_non_empty_matches(pattern: str, text: str, expected: list[str]) -> None:
    assert find_all(pattern, text) == expected


def test_pattern_error_gives_re2s_message() -> None:
    assert pattern_error("a") is None
    assert pattern_error("(a") == "missing ): (a"
    assert pattern_error("a{2000}") == "invalid repetition size: {2000}"
