"""RE2 Sets (watcher.rules.pattern_sets): which patterns may match an entry, and where.

What a Set reports is a superset of where a pattern matches: the matcher runs the pattern
itself before it counts. These tests pin the superset: no field where a pattern matches is
ever left out, whether the pattern runs over the joined fields or field by field.
"""

from __future__ import annotations

import pytest

from tests.support.entries import entry
from watcher.models import Rule
from watcher.rules.entry_text import EntryText
from watcher.rules.matcher import RuleSet
from watcher.rules.pattern_sets import PatternSets
from watcher.rules.query import FIELDS

TITLE, SUMMARY, CATEGORY = FIELDS.index("title"), FIELDS.index("summary"), FIELDS.index("category")


def reported(patterns: dict[str, int], fields: set[str], text: EntryText) -> list[set[int]]:
    keys = PatternSets(patterns, fields).keys(text)
    assert len(keys) == len(FIELDS)
    for field, found in zip(FIELDS, keys, strict=True):
        assert (found is None) == (field not in fields), field
    return [set(found or ()) - {-1} for found in keys]  # -1: the Sets' sentinel, no key


def test_an_unanchored_pattern_found_in_one_field_is_possible_in_every_pattern_field() -> None:
    text = EntryText.from_entry(entry("strikes overnight", "sanctions 12 widen"))
    keys = reported({"sanc[a-z]* [0-9]+": 7, "nothing here": 8}, {"title", "summary"}, text)
    assert keys[TITLE] == keys[SUMMARY] == {7}


def test_an_anchored_pattern_is_reported_only_where_it_matches() -> None:
    # "^talks" matches the start of the summary, not the start of the joined text.
    text = EntryText.from_entry(entry("strikes before", "talks begin", categories=("Talks",)))
    keys = reported({"^talks": 3, r"begin\z": 4}, {"title", "summary", "category"}, text)
    assert keys[TITLE] == set()
    assert keys[SUMMARY] == {3, 4}
    assert keys[CATEGORY] == {3}


@pytest.mark.parametrize(
    "query",
    [
        r"/\bputin\b/",  # at the edge of a field: a newline is a boundary too
        "/^putin/",
        "/talks$/",
        r"/\Aputin/",
        r"/strikes\s+putin/",  # spans two fields in the joined text: possible, no match
        "title:/talks/",  # reported for the summary, run on the title only
    ],
)
def test_the_matcher_agrees_with_the_reference_across_field_edges(query: str) -> None:
    rules = RuleSet.compile([Rule(name="r", queries=(query,), notify=())], {})
    for item in (
        entry("news of strikes", "putin and talks"),
        entry("putin", "strikes talks"),
        entry("x", "y", "putin talks", categories=("Putin", "Talks")),
    ):
        text = EntryText.from_entry(item)
        assert rules.match_text(text, "key", "Feed") == rules.match_text_reference(
            text, "key", "Feed"
        )
