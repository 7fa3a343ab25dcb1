"""Text normalization shared by rules and entries: both sides must agree token for token.

The pipeline, in order:

1. HTML tags are replaced by a space, *before* entities are decoded, so ``a<br>b`` is two
   tokens while ``&lt;b&gt;`` is text.
2. HTML entities are decoded (``html.unescape``).
3. Unicode NFKC, then casefold.
4. Diacritics are removed in every script: compatibility decomposition, every combining
   mark with a non-zero canonical combining class is dropped, then NFC recomposes.
   There is no transliteration ("Путин" stays Cyrillic). Accepted side effects: Cyrillic
   "й" becomes "и" and "ё" becomes "е" (breve and diaeresis are combining marks), and
   Japanese voiced kana lose their dakuten ("が" becomes "か").
5. Tokens are runs of letters and digits (``str.isalnum``); everything else (dashes,
   quotes, apostrophes, all punctuation, symbols, spaces) separates tokens. Spacing marks
   that survive step 4 (e.g. Devanagari vowel signs) continue a token rather than
   split it, so words in such scripts stay whole.

Speed: a regex ``findall`` costs about 0.25 µs per token, most of a news entry's matching
cost. Typographic punctuation that steps 3-5 would only turn into a separator (curly quotes,
dashes, no-break spaces; ``_separates_alone`` decides, character by character) is blanked
before step 3, so English text with curly quotes skips the Unicode normalizations (2 KB: 58
-> 11 µs); text that is then ASCII takes ``str.translate`` and ``str.split`` instead of the
regex, about five times faster. Tests hold both shortcuts to the definition (``_fold_fully``
and the regex): a property test, and every character from U+00A0 to U+20CF in company.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Iterable

__all__ = ["normalize", "tokenize"]


def _char_class(predicate: Callable[[str], bool], code_points: Iterable[int]) -> str:
    """A regex character class body listing every code point the predicate accepts."""
    ranges: list[tuple[int, int]] = []
    for code_point in code_points:
        if not predicate(chr(code_point)):
            continue
        if ranges and ranges[-1][1] == code_point - 1:
            ranges[-1] = (ranges[-1][0], code_point)
        else:
            ranges.append((code_point, code_point))
    return "".join(_range_text(first, last) for first, last in ranges)


def _range_text(first: int, last: int) -> str:
    if first == last:
        return re.escape(chr(first))
    return f"{re.escape(chr(first))}-{re.escape(chr(last))}"


def _is_diacritic(char: str) -> bool:
    return unicodedata.combining(char) != 0


def _is_spacing_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M") and unicodedata.combining(char) == 0


# Marks exist only in planes 0, 1 and 14. `re` tests a class of BMP characters with a
# bitmap but a class beyond the BMP range by range, which is several times slower: text
# without astral characters takes BMP-only patterns, and in the others a cheap "is it
# astral at all" test guards the slow class.
_BMP = range(0x10000)
_ASTRAL = (*range(0x10000, 0x20000), *range(0xE0000, 0xE1000))
_ANY_ASTRAL = r"[\U00010000-\U0010ffff]"
_HAS_ASTRAL = re.compile(_ANY_ASTRAL)


def _either(predicate: Callable[[str], bool]) -> tuple[str, str]:
    """Regexes for one character that satisfies the predicate: (BMP only, any plane)."""
    bmp = f"[{_char_class(predicate, _BMP)}]"
    astral = f"{_ANY_ASTRAL}(?<=[{_char_class(predicate, _ASTRAL)}])"
    return bmp, f"(?:{bmp}|{astral})"


_BMP_DIACRITICS, _ANY_DIACRITICS = _either(_is_diacritic)
_BMP_MARKS, _ANY_MARKS = _either(_is_spacing_mark)


def _token_pattern(marks: str) -> re.Pattern[str]:
    # Letters and digits, plus surviving marks inside a token; a token never starts with one.
    return re.compile(rf"[^\W_]+(?:{marks}+[^\W_]*)*")


_DIACRITICS = (re.compile(f"{_BMP_DIACRITICS}+"), re.compile(f"{_ANY_DIACRITICS}+"))
_TOKENS = (_token_pattern(_BMP_MARKS), _token_pattern(_ANY_MARKS))
# A tag starts like one (letter, "/", "!" or "?" after "<"); "[^<>]*" keeps the scan linear
# on hostile input such as "<a<a<a…" with no ">".
_HTML_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")


def _is_separator(char: str) -> bool:
    return not char.isalnum() and not unicodedata.category(char).startswith("M")


# Non-ASCII characters frequent in Latin-script news that never belong to a token: Latin-1
# punctuation and symbols, general punctuation (quotes, dashes, spaces), currency signs.
_SEPARATOR_RANGES = (*range(0xA0, 0xC0), *range(0x2000, 0x2070), *range(0x20A0, 0x20D0))
_COMMON_SEPARATORS = re.compile(f"[{_char_class(_is_separator, _SEPARATOR_RANGES)}]+")
# Every ASCII character that is not a letter or a digit becomes a space.
_ASCII_SEPARATORS = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})


def _fold_fully(text: str) -> tuple[str, bool]:
    """Steps 1-4 (tags, entities, NFKC, casefold, diacritics), as defined, without shortcuts;
    also: any astral characters?"""
    return _normalized(_untagged(text))


def _untagged(text: str) -> str:
    """Steps 1-2."""
    return html.unescape(_HTML_TAG.sub(" ", text))


def _normalized(text: str) -> tuple[str, bool]:
    """Steps 3-4."""
    if text.isascii():
        return text.lower(), False
    text = unicodedata.normalize("NFKC", text).casefold()
    astral = _HAS_ASTRAL.search(text) is not None
    text = _DIACRITICS[astral].sub("", unicodedata.normalize("NFKD", text))
    return unicodedata.normalize("NFC", text), astral


def _separates_alone(char: str) -> bool:
    """Whether steps 3-5 make ``char`` a separator and nothing else, in any company: then
    blanking it before step 3 gives the same tokens, and spares English text whose only
    non-ASCII characters are curly quotes and dashes the Unicode normalizations."""
    if not _is_separator(char):
        return False
    folded, _ = _normalized(char)
    return all(map(_is_separator, folded)) and all(
        _tokens_by_pattern(*_normalized(f"{left}{char}{right}")) == [left, right]
        for left, right in (("a", "b"), ("1", "2"), ("ж", "д"))
    )


def _fold(text: str) -> tuple[str, bool]:
    """_fold_fully's result, sooner: typographic punctuation is blanked before step 3."""
    text = _untagged(text)
    if not text.isascii():
        for char in _FREQUENT_SEPARATORS:  # str.replace: a fraction of re.sub's cost
            if char in text:
                text = text.replace(char, " ")
        if not text.isascii():
            text = _PLAIN_SEPARATORS.sub(" ", text)
    return _normalized(text)


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``, normalized; the unit every term and phrase matches against."""
    folded, astral = _fold(text)
    if not folded.isascii():
        folded = _COMMON_SEPARATORS.sub(" ", folded)
        if not folded.isascii():
            return _tokens_by_pattern(folded, astral)
    return folded.translate(_ASCII_SEPARATORS).split()


def _tokens_by_pattern(folded: str, astral: bool) -> list[str]:
    """Step 5 by regex, for any folded text: what the ASCII path must agree with."""
    return _TOKENS[astral].findall(folded)


# Built here: _separates_alone needs the functions above.
_PLAIN_SEPARATORS = re.compile(f"[{_char_class(_separates_alone, _SEPARATOR_RANGES)}]+")
# The ones most news text has: curly quotes, dashes, ellipsis, no-break space.
_FREQUENT_SEPARATORS = tuple(
    char for char in "\u2019\u201c\u201d\u2018\u2014\u2013\u2026\u00a0" if _separates_alone(char)
)


def normalize(text: str) -> str:
    """The tokens of ``text`` joined by single spaces, so normalizing twice changes nothing."""
    return " ".join(tokenize(text))
