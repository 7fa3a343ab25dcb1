"""The query parser: syntax tree shapes, precedence, offsets and error messages."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.errors import RuleSyntaxError
from watcher.rules.query import (
    FIELDS,
    MAX_DEPTH,
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
    parse_query,
)

ENTITIES = {
    "Putin": ["Vladimir Putin", "Putin", "Путин"],
    "Trump": ["Donald Trump", "Trump"],
    "Zelenskyy": ["Volodymyr Zelenskyy", "Zelenskyy", "Zelensky", "Zelenskiy"],
}
PUTIN = Entity("Putin", (("vladimir", "putin"), ("putin",), ("путин",)))
TRUMP = Entity("Trump", (("donald", "trump"), ("trump",)))


def parse(query: str) -> Node:
    return parse_query(query, ENTITIES)


def error(query: str) -> RuleSyntaxError:
    with pytest.raises(RuleSyntaxError) as caught:
        parse(query)
    return caught.value


def t(token: str) -> Term:
    return Term(token)


# --- terms and phrases --------------------------------------------------------------------


def test_a_word_is_a_normalized_term() -> None:
    assert parse("Trump") == t("trump")


def test_star_makes_a_prefix_term() -> None:
    assert parse("sanction*") == Term("sanction", prefix=True)


def test_quoted_words_are_a_phrase() -> None:
    assert parse('"Peace Talks"') == Phrase(("peace", "talks"))


def test_punctuation_inside_quotes_separates() -> None:
    assert parse('"peace. Talks"') == Phrase(("peace", "talks"))


def test_a_quoted_single_word_is_a_term() -> None:
    assert parse('"Trump"') == t("trump")


@pytest.mark.parametrize("query", ["Putin–Trump", "Putin-Trump", "Putin—Trump", "Putin,Trump"])
def test_a_bare_dashed_word_is_a_phrase(query: str) -> None:
    assert parse(query) == parse('"putin trump"') == Phrase(("putin", "trump"))


def test_a_word_of_several_tokens_is_a_phrase() -> None:
    assert parse("U.S.") == Phrase(("u", "s"))


@pytest.mark.parametrize("word", ["and", "or", "not", "near", "And", "Or", "Not"])
def test_operators_in_lower_or_mixed_case_are_words(word: str) -> None:
    assert parse(f"putin {word} trump") == And((t("putin"), t(word.lower()), t("trump")))


def test_near_in_lower_case_is_a_word() -> None:
    assert parse("a near/5 b") == And((t("a"), Phrase(("near", "5")), t("b")))


# --- negation -----------------------------------------------------------------------------


def test_leading_minus_negates() -> None:
    assert parse("putin -trump") == And((t("putin"), Not(t("trump"))))


def test_minus_inside_a_word_is_a_dash() -> None:
    assert parse("anti-war") == Phrase(("anti", "war"))


def test_minus_negates_phrases_entities_groups_and_fields() -> None:
    assert parse('-"peace talks"') == Not(Phrase(("peace", "talks")))
    assert parse("-@Trump") == Not(TRUMP)
    assert parse("-(a OR b)") == Not(Or((t("a"), t("b"))))
    assert parse("-title:a") == Not(Field("title", t("a")))


def test_a_word_after_minus_is_never_an_operator() -> None:
    assert parse("a -OR") == And((t("a"), Not(t("or"))))


def test_not_negates() -> None:
    assert parse("NOT trump") == Not(t("trump"))


# --- precedence ---------------------------------------------------------------------------


def test_adjacent_terms_mean_and() -> None:
    assert parse("a b c") == parse("a AND b AND c") == And((t("a"), t("b"), t("c")))


def test_and_binds_tighter_than_or() -> None:
    assert parse("a OR b c") == parse("a OR (b AND c)") == Or((t("a"), And((t("b"), t("c")))))


def test_explicit_and_binds_tighter_than_or() -> None:
    assert parse("a AND b OR c") == Or((And((t("a"), t("b"))), t("c")))


def test_not_binds_tighter_than_and() -> None:
    assert parse("NOT a b") == And((Not(t("a")), t("b")))


def test_near_binds_tighter_than_and() -> None:
    assert parse("a b NEAR/3 c") == And((t("a"), Near(t("b"), t("c"), 3)))


def test_parentheses_group() -> None:
    assert parse("(a OR b) c") == And((Or((t("a"), t("b"))), t("c")))


def test_the_design_example_parses() -> None:
    query = '"Putin–Trump" OR (@Putin NEAR/10 @Trump AND (summit OR talks OR meet*))'
    assert parse(query) == Or(
        (
            Phrase(("putin", "trump")),
            And(
                (
                    Near(PUTIN, TRUMP, 10),
                    Or((t("summit"), t("talks"), Term("meet", prefix=True))),
                )
            ),
        )
    )


# --- entities, NEAR, fields ---------------------------------------------------------------


def test_entity_aliases_are_normalized_token_tuples() -> None:
    assert parse("@Putin") == PUTIN


def test_entity_aliases_that_normalize_alike_are_kept_once() -> None:
    node = parse_query("@X", {"X": ["Trump", "TRUMP", "trump!"]})
    assert node == Entity("X", (("trump",),))


def test_near_sides_can_be_terms_phrases_entities_groups_and_fields() -> None:
    assert parse('"peace talks" NEAR/2 @Trump') == Near(Phrase(("peace", "talks")), TRUMP, 2)
    assert parse("(a OR b) NEAR/1 c*") == Near(Or((t("a"), t("b"))), Term("c", prefix=True), 1)
    assert parse("title:a NEAR/4 b") == Near(Field("title", t("a")), t("b"), 4)


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_takes_a_term(field: str) -> None:
    assert parse(f"{field}:trump") == Field(field, t("trump"))


def test_field_takes_a_phrase_a_group_an_entity_and_a_prefix() -> None:
    assert parse('title:"peace talks"') == Field("title", Phrase(("peace", "talks")))
    assert parse("title:(a OR b)") == Field("title", Or((t("a"), t("b"))))
    assert parse("author:@Trump") == Field("author", TRUMP)
    assert parse("category:sanction*") == Field("category", Term("sanction", prefix=True))


def test_field_binds_to_the_next_operand_only() -> None:
    assert parse("title:a b") == And((Field("title", t("a")), t("b")))


def test_text_with_a_digit_before_a_colon_is_no_field() -> None:
    assert parse("10:30") == Phrase(("10", "30"))


# --- regular expressions ------------------------------------------------------------------


def test_slashes_make_a_pattern_kept_exactly_as_written() -> None:
    assert parse("/Pu.*in/") == Regex("Pu.*in")  # not normalized: patterns run as written


def test_an_escaped_slash_stays_in_the_pattern() -> None:
    assert parse(r"/a\/b/") == Regex(r"a\/b")
    assert parse(r"/a\\/ b") == And((Regex(r"a\\"), t("b")))  # an escaped backslash


def test_a_pattern_may_hold_spaces_quotes_parentheses_and_operators() -> None:
    assert parse('/peace (talks|deal) "x" AND/ y') == And(
        (Regex('peace (talks|deal) "x" AND'), t("y"))
    )


def test_a_pattern_goes_wherever_a_term_does_except_near() -> None:
    assert parse("-/x+/") == Not(Regex("x+"))
    assert parse("title:/x+/") == Field("title", Regex("x+"))
    assert parse("a OR /x+/ b") == Or((t("a"), And((Regex("x+"), t("b")))))
    assert parse("(/x+/)") == Regex("x+")


def test_a_slash_inside_a_word_is_no_pattern() -> None:
    assert parse("AC/DC") == Phrase(("ac", "dc"))


def test_a_pattern_records_where_it_is() -> None:
    query = "a title:/b c/"
    node = parse(query)
    assert isinstance(node, And)
    fielded = node.children[1]
    assert isinstance(fielded, Field)
    assert span(query, fielded.child) == "/b c/"


# --- hits as written -----------------------------------------------------------------------


def test_terms_and_phrases_remember_how_they_were_written() -> None:
    node = parse('Trump "Peace   Talks" U.S.')
    assert isinstance(node, And)
    assert [child.label for child in node.children if isinstance(child, Term | Phrase)] == [
        "Trump",
        "Peace Talks",
        "U.S.",
    ]


def test_entity_aliases_remember_their_first_spelling() -> None:
    node = parse_query("@Z", {"Z": ["Зеленський", "ЗЕЛЕНСЬКИЙ", "Volodymyr  Zelenskyy"]})
    assert isinstance(node, Entity)
    assert node.aliases == (("зеленськии",), ("volodymyr", "zelenskyy"))
    assert [node.label(index) for index in range(2)] == ["Зеленський", "Volodymyr Zelenskyy"]


# --- offsets ------------------------------------------------------------------------------


def span(query: str, node: Node) -> str:
    return query[node.offset : node.end]


def test_nodes_record_where_they_are() -> None:
    query = 'x OR title:"a b" NEAR/3 @Trump  -y'
    node = parse(query)
    assert isinstance(node, Or)
    assert span(query, node) == query
    first, second = node.children
    assert span(query, first) == "x"
    assert isinstance(second, And)
    assert span(query, second) == 'title:"a b" NEAR/3 @Trump  -y'
    near, negated = second.children
    assert isinstance(near, Near)
    assert span(query, near) == 'title:"a b" NEAR/3 @Trump'
    assert isinstance(near.left, Field)
    assert span(query, near.left) == 'title:"a b"'
    assert span(query, near.left.child) == '"a b"'
    assert span(query, near.right) == "@Trump"
    assert isinstance(negated, Not)
    assert span(query, negated) == "-y"
    assert span(query, negated.child) == "y"


def test_a_group_spans_its_parentheses() -> None:
    query = "a (b OR c)"
    node = parse(query)
    assert isinstance(node, And)
    assert span(query, node.children[1]) == "(b OR c)"


def test_not_spans_operator_and_operand() -> None:
    query = "a NOT  b"
    node = parse(query)
    assert isinstance(node, And)
    assert span(query, node.children[1]) == "NOT  b"


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "offset", "length", "message"),
    [
        ("", 0, 1, "the query is empty"),
        ("   ", 0, 1, "the query is empty"),
        ("a AND", 5, 1, 'expected a term, phrase, @Entity or "(" after AND, found end of query'),
        ("a AND \n", 5, 1, "after AND, found end of query"),
        ("a OR OR b", 5, 2, 'expected a term, phrase, @Entity or "(" after OR, found "OR"'),
        ("OR a", 0, 2, 'expected a term, phrase, @Entity or "(" at the start of the query'),
        ("NOT", 3, 1, "after NOT, found end of query"),
        ("a ()", 3, 1, 'after "(", found ")"'),
        ("a )", 2, 1, 'unbalanced ")"'),
        ("(a OR b) c)", 10, 1, 'unbalanced ")"'),
        ("x (a OR b", 2, 1, 'missing ")"'),
        ('a "peace talks', 2, 1, """missing closing '"'"""),
        ('""', 0, 2, "empty phrase"),
        ('" - "', 0, 5, "empty phrase"),
        ("a NEAR b", 2, 4, "NEAR needs a distance: NEAR/5"),
        ("a NEAR/ b", 2, 5, "NEAR needs a distance: NEAR/5"),
        ("a NEAR/x b", 2, 6, "NEAR needs a distance: NEAR/5"),
        ("a NEAR/0 b", 2, 6, "at least 1"),
        ("a NEAR/9999999999 b", 2, 15, "too large"),
        ("a NEAR/3", 8, 1, "after NEAR/3, found end of query"),
        ("a NEAR/3 b NEAR/3 c", 11, 6, "NEAR cannot be chained"),
        ("NOT a NEAR/3 b", 0, 5, "cannot be negated"),
        ("a NEAR/3 -b", 9, 2, "cannot be negated"),
        ("(a b) NEAR/3 c", 0, 5, "not an AND"),
        ("(a NEAR/2 b) NEAR/3 c", 0, 12, "NEAR cannot be nested"),
        ("@Putn", 0, 5, "unknown entity @Putn; did you mean @Putin?"),
        ("a @putin", 2, 6, "did you mean @Putin?"),
        ("a @Nobody", 2, 7, "unknown entity @Nobody"),
        ("@", 0, 1, "expected an entity name after @"),
        ("@Putin's", 6, 1, "entity names are letters, digits and _"),
        ("a foo:bar", 2, 4, 'unknown field "foo"'),
        ("Title:x", 0, 6, "did you mean title:?"),
        ("https://example.com", 0, 6, 'unknown field "https"'),
        ("title: x", 6, 1, "right after title:, found a space"),
        ("title:", 6, 1, "right after title:, found end of query"),
        ("title:-x", 6, 1, "write -title:word"),
        ("title:(summary:x)", 7, 8, "summary: cannot be used inside title:"),
        ("- trump", 0, 1, '"-" excludes what touches it'),
        ("a -", 2, 1, '"-" excludes what touches it'),
        ("&", 0, 1, '"&" has no letters or digits'),
        ("Putin – Trump", 6, 1, '"–" has no letters or digits'),
        ("*", 0, 1, '"*" needs a word before it'),
        ("*trump", 0, 1, '"*" may only end a word'),
        ("san*ctions", 3, 1, '"*" may only end a word'),
        ("U.S.*", 0, 5, '"*" works on a single word'),
        ('"sanction*"', 9, 1, '"*" does not work inside quotes'),
        ("title:/x", 6, 1, "missing closing / for the regular expression"),
        ("/x\\/ y", 0, 1, "missing closing / for the regular expression"),
        ("//", 0, 2, "empty regular expression"),
        ("a /pu(in/ b", 2, 7, "invalid regular expression: missing ): pu(in"),
        ("/x[/", 0, 4, "invalid regular expression: missing ]"),
        ("/putin/i", 7, 1, "a regular expression takes no flags"),
        ("/putin/*", 7, 1, 'unexpected "*" after the regular expression'),
        ("/pu.in/ NEAR/3 b", 0, 7, "a regular expression cannot be a side of NEAR"),
        ("a NEAR/3 (b OR title:/x/)", 21, 3, "a regular expression cannot be a side of NEAR"),
    ],
)
def test_errors_say_what_and_point_at_where(
    query: str, offset: int, length: int, message: str
) -> None:
    raised = error(query)
    assert message in raised.message
    assert (raised.offset, raised.length) == (offset, length)
    assert raised.query == query


def test_unknown_field_lists_the_valid_ones() -> None:
    assert "fields are title, summary, content, author, category, link, feed" in (
        error("foo:bar").message
    )


def test_unknown_entity_without_entities_says_none_are_defined() -> None:
    with pytest.raises(RuleSyntaxError, match="no entities are defined"):
        parse_query("@Putin", {})


def test_entity_without_usable_aliases_is_an_error() -> None:
    with pytest.raises(RuleSyntaxError, match="no alias with letters or digits"):
        parse_query("@X", {"X": ["--", "!"]})


def test_nesting_deeper_than_the_limit_is_an_error() -> None:
    assert parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == t("a")
    deep = "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1)
    assert error(deep).offset == MAX_DEPTH
    assert "nests too deeply" in error("NOT " * 1000 + "a").message
    assert "nests too deeply" in error("-" * 1000 + "a").message


# --- properties ---------------------------------------------------------------------------


def _parses_or_raises_rule_syntax_error(query: str) -> None:
    """Any other exception escapes and fails the test; so does a misplaced node or caret."""
    problem: RuleSyntaxError | None = None
    try:
        node = parse(query)
    except RuleSyntaxError as exc:
        problem = exc
    if problem is None:
        assert 0 <= node.offset <= node.end <= len(query)
    else:
        assert problem.query == query
        assert 0 <= problem.offset <= len(query)
        assert problem.message


@settings(max_examples=1000)
@given(st.text())
def test_any_text_parses_or_raises_rule_syntax_error(query: str) -> None:
    _parses_or_raises_rule_syntax_error(query)


PIECES = [
    "AND", "OR", "NOT", "NEAR", "NEAR/", "NEAR/0", "NEAR/3", "near/3", "and", "(", ")", '"', "-",
    "*", "@", "@Putin", "@Trump", "@Nope", "title:", "link:", "foo:", ":", "/", "trump", "/x+/",
    "/(/", "\\", "/i",
    "sanction*", "Putin–Trump", "U.S.", "Путин", "'", "—", "<b>", "&amp;", "é", "\u0301", "😀",
]  # fmt: skip


@settings(max_examples=2000)
@given(st.lists(st.sampled_from(PIECES), max_size=12), st.lists(st.sampled_from(["", " ", "  "])))
def test_grammar_pieces_parse_or_raise_rule_syntax_error(
    pieces: list[str], separators: list[str]
) -> None:
    query = "".join(
        piece + (separators[index] if index < len(separators) else " ")
        for index, piece in enumerate(pieces)
    )
    _parses_or_raises_rule_syntax_error(query)


LEAVES = st.sampled_from(
    ["trump", "sanction*", "Putin–Trump", '"peace talks"', "@Putin", "U.S.", "Путин", "a1"]
)
PATTERNS = st.sampled_from(["/pu.*in/", r"/a\/b/", "/(x|y) z/"])


def _operands(leaves: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        leaves,
        leaves.map(lambda leaf: f"title:{leaf}"),
        st.lists(leaves, min_size=2, max_size=3).map(lambda items: "(" + " OR ".join(items) + ")"),
    )


def _combined(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, inner).map(lambda pair: f"{pair[0]} AND {pair[1]}"),
        st.tuples(inner, inner).map(lambda pair: f"{pair[0]} OR {pair[1]}"),
        st.tuples(inner, inner).map(lambda pair: f"{pair[0]} {pair[1]}"),
        inner.map(lambda query: f"NOT ({query})"),
        inner.map(lambda query: f"-({query})"),
        inner.map(lambda query: f"({query})"),
        inner.map(lambda query: f"content:({query})" if ":" not in query else query),
        st.tuples(_operands(LEAVES), st.integers(1, 20), _operands(LEAVES)).map(
            lambda near: f"{near[0]} NEAR/{near[1]} {near[2]}"
        ),
    )


VALID_QUERIES = st.recursive(LEAVES | PATTERNS, _combined, max_leaves=12)


@settings(max_examples=500)
@given(VALID_QUERIES)
def test_queries_built_from_the_grammar_parse(query: str) -> None:
    node = parse(query)
    assert (node.offset, node.end) == (0, len(query))
