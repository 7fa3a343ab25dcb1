"""The reference evaluator and RuleSet: DESIGN.md's "Precise points", one test each."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.entries import entry
from watcher.errors import RuleSyntaxError
from watcher.models import Entry, Match, Rule
from watcher.rules.entry_text import SEGMENTED_FIELDS
from watcher.rules.matcher import CATEGORY_SEPARATOR, EntryText, RuleSet, evaluate
from watcher.rules.query import Near, Not, Phrase, Term, parse_query

ENTITIES = {
    "Putin": ["Vladimir Putin", "Putin", "Путин"],
    "Trump": ["Donald Trump", "Trump"],
}


def matches(query: str, item: Entry) -> bool:
    return evaluate(parse_query(query, ENTITIES), EntryText.from_entry(item)).matched


def hits(query: str, item: Entry) -> tuple[str, ...]:
    result = evaluate(parse_query(query, ENTITIES), EntryText.from_entry(item))
    assert result.matched
    return result.hits


# --- terms --------------------------------------------------------------------------------


@pytest.mark.parametrize("title", ["Trump", "TRUMP", "Trump's", "Putin-Trump", "trump."])
def test_term_matches_whole_tokens(title: str) -> None:
    assert matches("trump", entry(title))


@pytest.mark.parametrize("title", ["Trumpet", "Trumps", "antitrump"])
def test_term_does_not_match_inside_a_token(title: str) -> None:
    assert not matches("trump", entry(title))


def test_no_stemming() -> None:
    assert not matches("sanctions", entry("New sanction"))
    assert matches("sanctions", entry("New sanctions"))


@pytest.mark.parametrize("title", ["sanction", "sanctions", "Sanctioned", "SANCTIONING"])
def test_prefix_matches_the_stem_and_longer_tokens(title: str) -> None:
    assert matches("sanction*", entry(title))


def test_prefix_does_not_match_a_shorter_token() -> None:
    assert not matches("sanction*", entry("sanctimonious sanct"))


def test_prefix_hits_are_the_matched_tokens_in_text_order() -> None:
    item = entry("Sanctions and more sanctioned goods", "a sanction")
    assert hits("sanction*", item) == ("sanctions", "sanctioned", "sanction")


# --- phrases ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title", ["Putin-Trump", "Putin — Trump", "putin trump", "Putin, Trump", "Putin–Trump talks"]
)
def test_dashed_word_matches_the_phrase_however_written(title: str) -> None:
    assert matches("Putin–Trump", entry(title))


@pytest.mark.parametrize("title", ["Trump-Putin", "Putin meets Trump", "Putin"])
def test_dashed_word_needs_consecutive_tokens_in_order(title: str) -> None:
    assert not matches("Putin–Trump", entry(title))


def test_punctuation_is_a_separator_inside_a_phrase() -> None:
    assert matches('"peace talks"', entry("No peace. Talks collapse"))


def test_phrase_hit_is_the_phrase_as_written() -> None:
    assert hits('"Peace  Talks"', entry("peace talks")) == ("Peace Talks",)
    assert hits("Putin–Trump", entry("putin trump")) == ("Putin–Trump",)


def test_term_hit_is_the_term_as_written_and_prefix_hit_the_token_found() -> None:
    assert hits("Zelénsky", entry("ZELENSKY")) == ("Zelénsky",)
    assert hits("Sanction*", entry("SANCTIONS")) == ("sanctions",)


# --- operators in lower case --------------------------------------------------------------


def test_lower_case_and_is_a_word() -> None:
    assert matches("putin and trump", entry("Putin and Trump"))
    assert not matches("putin and trump", entry("Putin, Trump"))


def test_lower_case_or_is_a_word() -> None:
    assert not matches("putin or trump", entry("Putin"))
    assert matches("putin or trump", entry("Putin or Trump"))


def test_lower_case_not_is_a_word() -> None:
    assert not matches("not trump", entry("Putin"))
    assert matches("not trump", entry("not Trump"))


# --- normalization seen through matching --------------------------------------------------


def test_html_tag_separates_tokens() -> None:
    assert not matches("putin", entry("", "Pu<b>tin</b>"))
    assert matches("Putin–Trump", entry("", "<p>Putin</p><p>Trump</p>"))


def test_decoded_entities_are_text_not_tags() -> None:
    assert matches("b", entry("", "&lt;b&gt;Trump&lt;/b&gt;"))


def test_latin_term_does_not_match_cyrillic() -> None:
    assert not matches("putin", entry("Путин"))
    assert matches("@Putin", entry("Путин"))


def test_inflected_cyrillic_is_a_different_token() -> None:
    assert not matches("@Putin", entry("Путина"))


def test_diacritics_do_not_matter() -> None:
    assert matches("zelensky", entry("Zelénsky"))
    assert matches("Zelénsky", entry("ZELENSKY"))


# --- fields -------------------------------------------------------------------------------


def test_phrase_never_spans_title_and_summary() -> None:
    item = entry("Talks with Vladimir", "Putin arrives")
    assert not matches('"vladimir putin"', item)
    assert matches("vladimir putin", item)


def test_near_never_spans_title_and_summary() -> None:
    assert not matches("putin NEAR/5 trump", entry("Putin", "Trump"))


def test_unfielded_terms_look_at_title_summary_and_content() -> None:
    assert matches("trump", entry("", "", "Trump"))
    assert matches("trump", entry("", "Trump"))


@pytest.mark.parametrize(
    "item",
    [
        entry(author="Donald Trump"),
        entry(categories=("Trump",)),
        entry(link="https://example.com/trump"),
        entry(feed="Trump feed"),
    ],
)
def test_unfielded_terms_ignore_the_other_fields(item: Entry) -> None:
    assert not matches("trump", item)


def test_field_restricts_where_a_term_looks() -> None:
    item = entry("Putin", "Trump")
    assert matches("title:putin", item)
    assert not matches("title:trump", item)
    assert matches("summary:trump", item)
    assert matches("title:(trump OR putin)", item)
    assert not matches('title:"putin trump"', item)


@pytest.mark.parametrize(
    ("query", "item"),
    [
        ("author:trump", entry(author="Donald Trump")),
        ('author:"donald trump"', entry(author="Donald Trump")),
        ("category:sanctions", entry(categories=("World", "Sanctions"))),
        ("link:example", entry(link="https://www.example.com/a?b=c")),
        ('link:"example com"', entry(link="https://www.example.com/a?b=c")),
        ("feed:bbc", entry(feed="BBC World")),
        ("content:trump", entry("", "", "<p>Trump</p>")),
        ("author:@Trump", entry(author="Trump")),
    ],
)
def test_each_field_matches_its_own_text(query: str, item: Entry) -> None:
    assert matches(query, item)


def test_phrase_never_spans_two_categories() -> None:
    item = entry(categories=("Vladimir", "Putin news"))
    assert not matches('category:"vladimir putin"', item)
    assert matches("category:vladimir category:putin", item)


def test_categories_are_kept_apart_by_the_separator() -> None:
    text = EntryText.from_entry(entry(categories=("A b", "", "C")))
    assert text.fields["category"] == ("a", "b", CATEGORY_SEPARATOR, "c")


def test_boolean_operators_combine_across_fields() -> None:
    item = entry("Putin", "Trump")
    assert matches("title:putin AND summary:trump", item)
    assert matches("putin trump", item)
    assert not matches("putin -trump", entry("Putin", "", "a Trump story"))


# --- negation and precedence --------------------------------------------------------------


def test_minus_excludes() -> None:
    assert matches("putin -trump", entry("Putin"))
    assert not matches("putin -trump", entry("Putin and Trump"))


def test_minus_inside_a_word_is_a_dash() -> None:
    assert matches("anti-war", entry("Anti war protest"))
    assert not matches("anti-war", entry("Anti protest"))


@pytest.mark.parametrize(
    ("title", "expected"),
    [("a", True), ("b c", True), ("b", False), ("c", False), ("x", False)],
)
def test_or_binds_loosest(title: str, expected: bool) -> None:
    assert matches("a OR b c", entry(title)) is expected


@pytest.mark.parametrize(
    ("title", "expected"), [("b", True), ("a b", False), ("a", False), ("x", False)]
)
def test_not_binds_tightest(title: str, expected: bool) -> None:
    assert matches("NOT a b", entry(title)) is expected


def test_hits_leave_out_negated_branches() -> None:
    assert hits("putin -trump", entry("Putin")) == ("putin",)
    assert hits("putin NOT (trump OR biden)", entry("Putin")) == ("putin",)


def test_or_hits_list_every_matching_branch() -> None:
    assert hits("summit OR talks OR meet*", entry("Talks before the summit")) == (
        "summit",
        "talks",
    )


# --- NEAR ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "distance", "expected"),
    [
        ("putin trump", 1, True),
        ("putin x trump", 1, False),
        ("putin x trump", 2, True),
        ("putin a b c trump", 4, True),
        ("putin a b c trump", 3, False),
        ("trump a b c putin", 4, True),
        ("trump a b c putin", 3, False),
    ],
)
def test_near_distance_boundary_in_either_order(title: str, distance: int, expected: bool) -> None:
    assert matches(f"putin NEAR/{distance} trump", entry(title)) is expected


@pytest.mark.parametrize(
    ("title", "distance", "expected"),
    [
        ("vladimir putin x trump", 2, True),  # from the end of the phrase
        ("vladimir putin x trump", 1, False),
        ("trump x vladimir putin", 2, True),  # to the start of the phrase
        ("trump x vladimir putin", 1, False),
    ],
)
def test_near_measures_from_the_nearest_token_of_a_phrase(
    title: str, distance: int, expected: bool
) -> None:
    assert matches(f'"vladimir putin" NEAR/{distance} trump', entry(title)) is expected


def test_near_with_entities_and_an_or_group() -> None:
    item = entry("", "Vladimir Putin will meet Donald Trump in Danang")
    assert matches("@Putin NEAR/3 @Trump", item)
    assert not matches("@Putin NEAR/2 @Trump", item)
    assert matches("(summit OR meet) NEAR/2 @Trump", item)
    assert hits("@Putin NEAR/3 @Trump", item) == ("Vladimir Putin", "Donald Trump")


def test_near_needs_two_occurrences() -> None:
    assert not matches("trump NEAR/3 trump", entry("Trump says"))
    assert matches("trump NEAR/3 trump", entry("Trump says Trump"))


def test_near_with_a_fielded_side_stays_in_that_field() -> None:
    item = entry("Putin and Trump", "Putin then Trump")
    assert matches("title:putin NEAR/2 trump", item)
    assert not matches("summary:putin NEAR/1 trump", item)


def test_near_hits_keep_a_side_listed_twice() -> None:
    assert hits("(trump OR trump) NEAR/3 putin", entry("Trump met Putin")) == ("trump", "putin")
    assert hits("(@Trump OR trump) NEAR/3 putin", entry("Trump met Putin")) == ("Trump", "putin")


def test_near_on_a_hand_built_tree() -> None:
    text = EntryText({"title": ("a", "b", "c")})
    assert evaluate(Near(Phrase(("a", "b")), Term("c"), 1), text).matched
    assert not evaluate(Near(Phrase(("a", "b")), Term("b"), 1), text).matched


# --- entities -----------------------------------------------------------------------------


def test_entity_matches_any_alias() -> None:
    assert hits("@Trump", entry("Donald Trump speaks")) == ("Donald Trump",)
    assert hits("@Trump", entry("Trump speaks")) == ("Trump",)


def test_entity_hits_are_the_aliases_as_written_in_the_entities_file() -> None:
    entities = {"Zelenskyy": ["Зеленський", "Volodymyr   Zelenskyy", "ЗЕЛЕНСЬКИЙ"]}
    node = parse_query("@Zelenskyy", entities)
    text = EntryText.from_entry(entry("Зеленський і Volodymyr Zelenskyy", "зеленськии"))
    assert evaluate(node, text).hits == ("Зеленський", "Volodymyr Zelenskyy")


def test_entity_hits_name_each_distinct_alias_found() -> None:
    item = entry("Vladimir Putin met Trump", "Putin said")
    assert hits("@Putin AND @Trump", item) == ("Vladimir Putin", "Putin", "Trump")


# --- the tree evaluator directly ----------------------------------------------------------


def test_evaluate_works_on_an_entry_text_built_by_hand() -> None:
    text = EntryText({"title": ("sanctions", "news"), "author": ("trump",)})
    assert evaluate(Term("sanction", prefix=True), text).hits == ("sanctions",)
    assert not evaluate(Term("trump"), text).matched
    assert evaluate(Not(Term("trump")), text).matched


def test_joined_text_and_the_segments_patterns_run_over() -> None:
    text = EntryText.from_entry(entry("Putin–Trump", categories=("World news", "", "Trump")))
    assert text.padded("title") == " putin trump "
    assert text.padded("category") == " world news  trump "
    assert text.padded("nowhere") == "  "
    assert text.segments("title") == ["putin trump"]
    assert text.segments("category") == ["world news", "trump"]
    assert text.segments("summary") == []
    assert EntryText({"category": (CATEGORY_SEPARATOR, "a")}).segments("category") == ["a"]


@given(st.lists(st.text(max_size=12), max_size=4), st.text(max_size=30), st.text(max_size=30))
@settings(max_examples=200)
def test_only_the_segmented_fields_hold_the_category_separator(
    categories: list[str], title: str, content: str
) -> None:
    text = EntryText.from_entry(
        entry(title, categories=tuple(categories), content=content, author=content)
    )
    for field, tokens in text.fields.items():
        if field not in SEGMENTED_FIELDS:
            assert CATEGORY_SEPARATOR not in tokens
            assert text.segments(field) == ([" ".join(tokens)] if tokens else [])


def test_positions_index() -> None:
    text = EntryText({"title": ("a", "b", "a")})
    assert text.positions("title", "a") == (0, 2)
    assert text.positions("title", "z") == ()
    assert text.positions("summary", "a") == ()


# --- RuleSet ------------------------------------------------------------------------------


def rule(name: str, *queries: str, feeds: tuple[str, ...] = ()) -> Rule:
    return Rule(name=name, queries=queries, notify=("console",), feeds=feeds)


def test_ruleset_returns_one_match_per_matching_rule() -> None:
    rules = RuleSet.compile(
        [
            rule("sanctions", "sanction*"),
            rule("putin-trump", "@Putin AND @Trump"),
            rule("weather", "rain"),
        ],
        ENTITIES,
    )
    item = entry("Vladimir Putin and Trump discuss sanctions", key="k1")
    assert rules.match(item) == [
        Match("sanctions", "k1", ("sanctions",)),
        Match("putin-trump", "k1", ("Vladimir Putin", "Trump")),
    ]


def test_any_query_of_a_rule_matches_and_terms_are_distinct() -> None:
    rules = RuleSet.compile([rule("either", "trump", "rain", "trump OR putin")], ENTITIES)
    assert rules.match(entry("Trump and Putin", key="k")) == [
        Match("either", "k", ("trump", "putin"))
    ]
    assert rules.match(entry("sunshine")) == []


def test_rule_scope_by_feed_name_and_tag() -> None:
    rules = RuleSet.compile(
        [
            rule("everywhere", "trump"),
            rule("bbc-only", "trump", feeds=("BBC",)),
            rule("world-tag", "trump", feeds=("tag:world",)),
        ],
        ENTITIES,
    )

    def rule_names(feed: str, tags: tuple[str, ...]) -> list[str]:
        return [found.rule for found in rules.match(entry("Trump", feed=feed), tags)]

    assert rule_names("BBC", ()) == ["everywhere", "bbc-only"]
    assert rule_names("Reuters", ("world",)) == ["everywhere", "world-tag"]
    assert rule_names("Reuters", ("local",)) == ["everywhere"]
    assert rule_names("world", ()) == ["everywhere"]  # a tag is not a feed name


def test_match_text_uses_the_given_text_and_feed() -> None:
    rules = RuleSet.compile([rule("scoped", "trump", feeds=("A",))], ENTITIES)
    text = EntryText.from_entry(entry("Trump"))
    assert rules.match_text(text, "k", "A") == [Match("scoped", "k", ("trump",))]
    assert rules.match_text(text, "k", "B") == []


def test_compile_keeps_the_rules_and_rejects_bad_queries() -> None:
    good = [rule("a", "trump"), rule("b", "putin")]
    assert RuleSet.compile(good, ENTITIES).rules == tuple(good)
    with pytest.raises(RuleSyntaxError, match="unknown entity @Biden"):
        RuleSet.compile([rule("a", "trump"), rule("bad", "@Biden")], ENTITIES)


def test_the_design_example_rule() -> None:
    query = '"Putin–Trump" OR (@Putin NEAR/10 @Trump AND (summit OR talks OR meet*))'
    rules = RuleSet.compile([rule("summit", query)], ENTITIES)
    story = entry(
        "Russia, Ukraine trade strikes before Putin–Trump talks",
        "President Vladimir Putin will meet with U.S. President Donald Trump in the coming days.",
        key="story",
    )
    assert rules.match(story) == [
        Match(
            "summit",
            "story",
            ("Putin–Trump", "Putin", "Vladimir Putin", "Trump", "Donald Trump", "talks", "meet"),
        )
    ]
    no_phrase = entry("", "Putin will meet with U.S. President Donald Trump soon.", key="s2")
    assert rules.match(no_phrase) == [Match("summit", "s2", ("Putin", "Donald Trump", "meet"))]
    too_far = entry("", "Putin " + "word " * 10 + "Trump meet", key="s3")
    assert rules.match(too_far) == []


# --- properties ---------------------------------------------------------------------------

WORDS = st.sampled_from(["putin", "trump", "talks", "peace", "a", "b"])
TITLES = st.lists(WORDS, max_size=12)


@settings(max_examples=300)
@given(TITLES, st.data())
def test_every_slice_of_the_title_matches_as_a_phrase(
    title: list[str], data: st.DataObject
) -> None:
    if not title:
        return
    start = data.draw(st.integers(0, len(title) - 1))
    end = data.draw(st.integers(start + 1, len(title)))
    assert matches('"' + " ".join(title[start:end]) + '"', entry(" ".join(title)))


@settings(max_examples=300)
@given(TITLES, WORDS, WORDS)
def test_boolean_operators_agree_with_python(title: list[str], left: str, right: str) -> None:
    item = entry(" ".join(title))
    has_left, has_right = left in title, right in title
    assert matches(left, item) is has_left
    assert matches(f"NOT {left}", item) is (not has_left)
    assert matches(f"{left} {right}", item) is (has_left and has_right)
    assert matches(f"{left} OR {right}", item) is (has_left or has_right)


@settings(max_examples=300)
@given(TITLES, WORDS, WORDS, st.integers(1, 6))
def test_near_agrees_with_a_brute_force_count(
    title: list[str], left: str, right: str, distance: int
) -> None:
    expected = any(
        i != j and abs(i - j) <= distance
        for i, first in enumerate(title)
        for j, second in enumerate(title)
        if first == left and second == right
    )
    item = entry(" ".join(title))
    assert matches(f"{left} NEAR/{distance} {right}", item) is expected
    assert matches(f"{right} NEAR/{distance} {left}", item) is expected


def _spans(title: list[str], tokens: list[str]) -> list[tuple[int, int]]:
    size = len(tokens)
    return [
        (start, start + size - 1)
        for start in range(len(title) - size + 1)
        if title[start : start + size] == tokens
    ]


@settings(max_examples=300)
@given(TITLES, st.lists(WORDS, min_size=1, max_size=3), WORDS, st.integers(1, 6))
def test_near_with_phrases_agrees_with_a_brute_force_count(
    title: list[str], phrase: list[str], word: str, distance: int
) -> None:
    expected = any(
        1 <= max(right_start - left_end, left_start - right_end) <= distance
        for left_start, left_end in _spans(title, phrase)
        for right_start, right_end in _spans(title, [word])
    )
    item = entry(" ".join(title))
    quoted = '"' + " ".join(phrase) + '"'
    assert matches(f"{quoted} NEAR/{distance} {word}", item) is expected
    assert matches(f"{word} NEAR/{distance} {quoted}", item) is expected


@pytest.mark.timeout(10)
def test_near_over_many_occurrences_is_not_quadratic() -> None:
    item = entry("", "", "a " * 50_000 + "b " * 50_000)
    assert hits("a NEAR/1000000 b", item) == ("a", "b")
    assert not matches("a NEAR/1 c", item)


def test_a_text_from_joined_fields_is_the_text_of_their_tokens() -> None:
    tokens = {"title": ("putin", "trump"), "category": ("a", CATEGORY_SEPARATOR, "b")}
    joined = EntryText.from_joined({"title": "putin trump", "category": "a  b", "summary": ()})
    assert joined.padded("title") == " putin trump "
    assert joined.segments("category") == ["a", "b"]
    assert joined.tokens("category") == tokens["category"]
    assert joined.tokens("summary") == ()
    assert joined == EntryText({**tokens, "summary": ()})
    assert [joined.has_text(field) for field in ("title", "summary", "nowhere")] == [
        True,
        False,
        False,
    ]
