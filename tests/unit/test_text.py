"""Normalization and tokenization: the common ground of rules and entries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watcher.rules.text import _fold_fully, _tokens_by_pattern, normalize, tokenize

DASHES = ["-", "\u2010", "\u2011", "\u2012", "\u2013", "\u2014", "\u2015", "\u2212"]
QUOTES = ["'", '"', "\u2018", "\u2019", "\u201a", "\u201c", "\u201d", "\u201e", "«", "»", "`"]


@pytest.mark.parametrize("text", ["Trump", "TRUMP", "trump", "tRuMp"])
def test_case_does_not_matter(text: str) -> None:
    assert tokenize(text) == ["trump"]


@pytest.mark.parametrize("dash", DASHES)
def test_every_dash_separates(dash: str) -> None:
    assert tokenize(f"Putin{dash}Trump") == ["putin", "trump"]


@pytest.mark.parametrize("quote", QUOTES)
def test_every_quote_and_apostrophe_separates(quote: str) -> None:
    assert tokenize(f"Trump{quote}s {quote}deal{quote}") == ["trump", "s", "deal"]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("peace. Talks", ["peace", "talks"]),
        ("Putin, Trump", ["putin", "trump"]),
        ("Putin — Trump", ["putin", "trump"]),
        ("snake_case", ["snake", "case"]),
        ("2025-11-25 10:30", ["2025", "11", "25", "10", "30"]),
        ("U.S.", ["u", "s"]),
        ("¡Hola! ¿Qué?", ["hola", "que"]),
        ("price: $100 (+5%)", ["price", "100", "5"]),
        ("👍🏽 great", ["great"]),
        ("", []),
        ("  \t\n ", []),
    ],
)
def test_punctuation_and_symbols_separate(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("a<br>b", ["a", "b"]),
        ("<p>Putin</p><p>Trump</p>", ["putin", "trump"]),
        ("Pu<b>tin</b>", ["pu", "tin"]),
        ('<a href="https://x.org/a?b=c">link</a>', ["link"]),
        ("<!-- comment -->text", ["text"]),
    ],
)
def test_html_tag_is_replaced_by_a_space(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_entities_are_decoded_after_tags_are_removed() -> None:
    # Decoded "<b>" is text, not a tag, so its letters remain tokens.
    assert tokenize("&lt;b&gt;Trump&lt;/b&gt;") == ["b", "trump", "b"]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Tom &amp; Jerry", ["tom", "jerry"]),
        ("caf&eacute;", ["cafe"]),
        ("Trump&#8217;s", ["trump", "s"]),
        ("x&nbsp;y", ["x", "y"]),
    ],
)
def test_html_entities_are_decoded(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_less_than_that_is_no_tag_is_kept() -> None:
    assert tokenize("5 < 6 and 7 > 3") == ["5", "6", "and", "7", "3"]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("ﬁnance", ["finance"]),
        ("ＴＲＵＭＰ", ["trump"]),
        ("x²", ["x2"]),
        ("Straße", ["strasse"]),
        ("İstanbul", ["istanbul"]),
        ("ΣΊΣΥΦΟΣ", ["σισυφοσ"]),
    ],
)
def test_nfkc_and_casefold(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Zelénskyy", ["zelenskyy"]),
        ("São Paulo", ["sao", "paulo"]),
        ("Ελλάδα", ["ελλαδα"]),
        ("Dvořák", ["dvorak"]),
        ("cafe\u0301", ["cafe"]),  # already decomposed input
    ],
)
def test_diacritics_are_removed(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


def test_no_transliteration() -> None:
    assert tokenize("Путин") == ["путин"]
    assert tokenize("Путин") != tokenize("Putin")


def test_inflected_forms_stay_distinct() -> None:
    assert tokenize("Путина") != tokenize("Путин")


def test_cyrillic_short_i_and_yo_lose_their_marks() -> None:
    # Accepted and documented: й and ё are и and е plus a combining mark.
    assert tokenize("Йошкар-Ола ёлка") == ["иошкар", "ола", "елка"]


def test_letters_without_decomposition_stay() -> None:
    assert tokenize("Łódź Øresund") == ["łodz", "øresund"]


def test_scripts_with_spacing_marks_keep_words_whole() -> None:
    assert tokenize("हिन्दी समाचार") == ["हिनदी", "समाचार"]


def test_scripts_without_spaces_are_one_run() -> None:
    assert tokenize("北京 東京") == ["北京", "東京"]


def test_normalize_joins_tokens_with_single_spaces() -> None:
    assert normalize("  <p>Putin—Trump</p>\n\n TALKS! ") == "putin trump talks"


@pytest.mark.timeout(10)
def test_unclosed_tags_take_linear_time() -> None:
    assert tokenize("<a" * 200_000) == ["a"] * 200_000


@settings(max_examples=500)
@given(st.text())
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once


@settings(max_examples=500)
@given(st.text())
def test_tokenize_of_normalized_text_is_the_same(text: str) -> None:
    assert tokenize(normalize(text)) == tokenize(text)


@settings(max_examples=500)
@given(st.text())
def test_tokens_are_nonempty_and_start_with_a_letter_or_digit(text: str) -> None:
    for token in tokenize(text):
        assert token[0].isalnum()
        assert not any(char.isspace() for char in token)


# The fast paths (typographic punctuation blanked before normalizing; ASCII split without a
# regex) against the definition (every step in order, step 5 by regex), on text mixing ASCII
# with the characters the fast paths blank or must not blank.
_MIXED = st.text(
    alphabet=st.one_of(
        st.characters(max_codepoint=0x7F),
        st.characters(min_codepoint=0xA0, max_codepoint=0xBF),
        st.characters(min_codepoint=0x2000, max_codepoint=0x206F),
        st.characters(min_codepoint=0x20A0, max_codepoint=0x20CF),
        st.sampled_from("éßÅﬁ²½ªµ\u0301\u0903Путинक्षि"),
        st.characters(),
    )
)


@settings(max_examples=2000)
@given(_MIXED)
def test_the_fast_path_gives_the_tokens_of_the_defining_pattern(text: str) -> None:
    # _fold_fully: steps 1-4 as defined, without blanking punctuation first.
    folded, astral = _fold_fully(text)
    assert tokenize(text) == _tokens_by_pattern(folded, astral)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Kyiv\u2019s \u201cdeal\u201d \u2014 talks\u2026", ["kyiv", "s", "deal", "talks"]),
        ("\u00a0\u00ab\u00a0Paris\u00a0\u00bb 5\u00a0\u20ac", ["paris", "5"]),
        ("x\u00b2 \u00bd \u00aa", ["x2", "1", "2", "a"]),
    ],
)
def test_typographic_punctuation_separates_and_numbers_survive(
    text: str, tokens: list[str]
) -> None:
    assert tokenize(text) == tokens


def test_blanking_punctuation_first_changes_no_tokens() -> None:
    # Every character from U+00A0 to U+20CF (the ranges the shortcut looks at and beyond), in
    # company that could make it compose or join: the same tokens as the definition.
    contexts = ["a{}b", "1{}2", "{}\u0301a", "a{}\u0903", "\u00e9{}\u0436", "{}", "a{}{}b"]
    differ = [
        (hex(code), context)
        for code in range(0xA0, 0x20D0)
        for context in contexts
        for text in [context.format(chr(code), chr(code))]
        if tokenize(text) != _tokens_by_pattern(*_fold_fully(text))
    ]
    assert differ == []
