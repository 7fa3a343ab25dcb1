"""Rule analysis: queries that match every entry, none, or nearly every one, proven so."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.entries import entry
from watcher.rules.analysis import MAX_ATOMS, Finding, RuleProblem, Severity, problems
from watcher.rules.matcher import EntryText, evaluate
from watcher.rules.query import DEFAULT_FIELDS, And, Field, Node, Not, Or, parse_query

ENTITIES = {"Putin": ["Vladimir Putin", "Putin", "Путин"], "Trump": ["Donald Trump", "Trump"]}


def found(query: str) -> list[tuple[Finding, Severity, str]]:
    """(finding, severity, the text the problem points at) for each problem."""
    return [
        (problem.finding, problem.severity, query[problem.offset : problem.offset + problem.length])
        for problem in problems(parse_query(query, ENTITIES))
    ]


@pytest.mark.parametrize(
    "query",
    [
        "a OR NOT a",
        "-a OR a",
        "NOT (a AND NOT a)",
        "x* OR -x",
        "a OR -(a b)",
        "(a OR b) OR -a",
        'talks OR NOT "peace talks" OR b',
        "@Putin OR -putin",  # an alias implies its entity
        "x OR -title:x",
        "/x+/ OR -/x+/",
    ],
)
def test_a_query_true_for_every_entry_is_an_error(query: str) -> None:
    assert found(query) == [(Finding.ALWAYS, Severity.ERROR, query)]


@pytest.mark.parametrize(
    "query",
    [
        "a AND NOT a",
        "a -a",
        '"a b" AND NOT a',
        '"a b c" -"b c"',
        "x AND NOT x*",
        "sanctions -sanction*",
        "sanction* -sanc*",
        '"vladimir putin" -@Putin',
        "putin -@Putin",
        "title:x -x",
        "a NEAR/3 b -a",
        "(a b) -(a OR c)",
        "/x+/ -/x+/",
        "title:(a -a)",
    ],
)
def test_a_query_true_for_no_entry_is_an_error(query: str) -> None:
    assert found(query) == [(Finding.NEVER, Severity.ERROR, query)]


@pytest.mark.parametrize(
    "query",
    [
        "NOT x",
        "-x",
        "-a -b",
        "NOT (a OR b)",
        "a OR -b",
        "-(a b)",
        "NOT (a NEAR/3 b)",
        "a NEAR/2 b OR -a",
    ],
)
def test_a_query_with_nothing_required_is_a_warning(query: str) -> None:
    assert found(query) == [(Finding.NOTHING_REQUIRED, Severity.WARNING, query)]


@pytest.mark.parametrize(
    "query",
    [
        "putin",
        "putin -trump",
        "sanction* -sanctions",  # "sanctioned" matches
        "x -title:x",  # x in the summary
        "a NEAR/3 b -c",
        "@Putin AND @Trump",
        "@Putin -putin",  # "Путин" is an alias too
        "(a b) OR (a -b)",
        '"Putin–Trump" OR (@Putin NEAR/10 @Trump AND (summit OR talks OR meet*))',
        "title:putin -summary:putin",
        "/putin \\w+/ -trump",
        "/(?i)Putin/",
        "a -b -c -d",
    ],
)
def test_ordinary_queries_have_no_problem(query: str) -> None:
    assert found(query) == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("a OR (b -b)", [(Finding.NEVER, Severity.WARNING, "(b -b)")]),
        ("x (a OR -a)", [(Finding.ALWAYS, Severity.WARNING, "(a OR -a)")]),
        ("x -(a -a)", [(Finding.ALWAYS, Severity.WARNING, "-(a -a)")]),
        (
            "(a OR -a) (b OR (c -c))",
            [
                (Finding.ALWAYS, Severity.WARNING, "(a OR -a)"),
                (Finding.NEVER, Severity.WARNING, "(c -c)"),
            ],
        ),
    ],
)
def test_a_part_always_or_never_true_is_a_warning(
    query: str, expected: list[tuple[Finding, Severity, str]]
) -> None:
    assert found(query) == expected


@pytest.mark.parametrize(
    ("query", "pointed_at"),
    [
        ("/Putin/", ["P"]),
        ("x /putin (Talks|deal)/", ["T"]),
        ("/zelénsky/", ["é"]),
        ("/зеленський/", ["й"]),
        ("/straße/", ["ß"]),
        ("/(?i)Zelénsky/", ["é"]),  # case does not matter any more, accents still do
        (r"/\QAB\E/", ["A", "B"]),  # \Q…\E is literal text
    ],
)
def test_pattern_letters_that_normalized_text_lacks_are_warnings(
    query: str, pointed_at: list[str]
) -> None:
    assert found(query) == [
        (Finding.PATTERN_CASE, Severity.WARNING, letter) for letter in pointed_at
    ]


@pytest.mark.parametrize(
    "query",
    [r"/\pL+ \p{Greek} \PN \x41 \x{42} \d\W\S\B\D/", "/(?P<Name>x)(?<Other>y)[[:alpha:]]/"],
)
def test_escapes_classes_and_group_names_are_not_letters(query: str) -> None:
    assert found(query) == []


def test_the_message_says_what_to_write() -> None:
    (problem,) = problems(parse_query("/Putin/", ENTITIES))
    assert 'Write "p" instead' in problem.message
    assert problem == RuleProblem(problem.message, 1, 1, Severity.WARNING, Finding.PATTERN_CASE)


def test_a_query_with_too_many_atoms_gets_no_truth_table_but_still_the_other_checks() -> None:
    many = " ".join(f"w{index}" for index in range(MAX_ATOMS + 1))
    assert found(f"{many} -w0") == []  # a contradiction, beyond the limit
    assert found(f"{many} -w0".replace("w1 ", "w1 (a OR -a) ")) == []
    negated = " ".join(f"-w{index}" for index in range(MAX_ATOMS + 1))
    assert found(negated) == [(Finding.NOTHING_REQUIRED, Severity.WARNING, negated)]


# --- what analysis claims holds on real entries --------------------------------------------

WORDS = ["a", "b", "ab", "abc", "putin", "vladimir", "Путин", "x"]
QUERY_LEAVES = [
    "a", "b", "ab", "a*", "ab*", '"a b"', '"vladimir putin"', "putin", "@Putin",
    "x", "/a+/", "/b a/",
]  # fmt: skip


def _operand(leaf: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return leaf | st.tuples(st.sampled_from(["title", "summary"]), leaf).map(":".join)


def _combined(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    leaves = _operand(st.sampled_from(QUERY_LEAVES))
    return st.one_of(
        # Leaves against negated leaves: where one implies the other, always or never true.
        st.tuples(inner, leaves).map(lambda pair: f"({pair[0]} OR -{pair[1]})"),
        st.tuples(inner, leaves).map(lambda pair: f"({pair[0]} -{pair[1]})"),
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]} AND {pair[1]})"),
        st.tuples(inner, inner).map(lambda pair: f"({pair[0]} OR {pair[1]})"),
        inner.map(lambda query: f"-({query})"),
        st.tuples(
            _operand(st.sampled_from(QUERY_LEAVES[:9])),
            st.integers(1, 3),
            _operand(st.sampled_from(QUERY_LEAVES[:9])),
        ).map(lambda near: f"{near[0]} NEAR/{near[1]} {near[2]}"),
    )


queries = st.recursive(_operand(st.sampled_from(QUERY_LEAVES)), _combined, max_leaves=5)
texts = st.lists(st.sampled_from(WORDS), max_size=6).map(" ".join)
entries = st.builds(
    lambda title, summary, content: EntryText.from_entry(entry(title, summary, content)),
    texts,
    texts,
    texts,
)


def _located(node: Node, offset: int, length: int) -> tuple[Node, tuple[str, ...]] | None:
    """The outermost node at that place in the query, with the fields it looks at."""
    pending: list[tuple[Node, tuple[str, ...]]] = [(node, DEFAULT_FIELDS)]
    while pending:
        current, scope = pending.pop(0)
        if (current.offset, current.length) == (offset, length):
            return current, scope
        match current:
            case And(children=children) | Or(children=children):
                pending.extend((child, scope) for child in children)
            case Not(child=child):
                pending.append((child, scope))
            case Field(field=field, child=child):
                pending.append((child, (field,)))
    return None


def test_what_analysis_proves_holds_on_random_entries() -> None:
    claims: list[Finding] = []

    @settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(queries, st.lists(entries, min_size=1, max_size=5))
    def check(query: str, items: list[EntryText]) -> None:
        node = parse_query(query, ENTITIES)
        for problem in problems(node):
            claims.append(problem.finding)
            if problem.finding is Finding.PATTERN_CASE:
                continue
            located = _located(node, problem.offset, problem.length)
            assert located is not None
            part, scope = located
            for text in items:
                matched = evaluate(part, text, scope).matched
                if problem.finding is Finding.ALWAYS:
                    assert matched
                elif problem.finding is Finding.NEVER:
                    assert not matched
            if problem.finding is Finding.NOTHING_REQUIRED:
                assert evaluate(part, EntryText({}), scope).matched

    check()
    # Each kind of claim was put to the test, not just the easy ones.
    for finding in (Finding.ALWAYS, Finding.NEVER, Finding.NOTHING_REQUIRED):
        assert claims.count(finding) >= 20, finding
