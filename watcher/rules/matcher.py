"""RuleSet: every rule compiled once, then matched against one entry at a time.

Matching goes through the compiled matcher (watcher.rules.compiled). The reference
evaluator (watcher.rules.reference) defines the semantics; ``match_text_reference`` is the
plain loop that evaluates every rule with it, kept for tests and benchmarks to compare with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence

from watcher.models import Entry, Match, Rule
from watcher.rules.compiled import CompiledRules
from watcher.rules.entry_text import CATEGORY_SEPARATOR, EntryText
from watcher.rules.query import Node, parse_query
from watcher.rules.reference import Evaluation, distinct, evaluate

__all__ = ["CATEGORY_SEPARATOR", "EntryText", "Evaluation", "RuleSet", "evaluate"]


@dataclasses.dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: Rule
    queries: tuple[Node, ...]

    def applies_to(self, feed_name: str, feed_tags: Collection[str]) -> bool:
        """Empty feeds: every feed; else the feed's name or one of its tags is listed."""
        if not self.rule.feeds:
            return True
        return any(
            scope[4:] in feed_tags if scope.startswith("tag:") else scope == feed_name
            for scope in self.rule.feeds
        )

    def match(self, text: EntryText, entry_key: str) -> Match | None:
        results = [evaluate(query, text) for query in self.queries]
        matched = [result for result in results if result.matched]
        if not matched:
            return None
        return Match(self.rule.name, entry_key, distinct(h for r in matched for h in r.hits))


class RuleSet:
    """Rules with their queries parsed and compiled once; matching is pure and thread-safe."""

    __slots__ = (
        "_compiled",
        "_every_feed",
        "_every_rule",
        "_feed_names",
        "_feed_tags",
        "_matcher",
        "_names",
    )

    def __init__(self, compiled: Iterable[_CompiledRule]) -> None:
        self._compiled = tuple(compiled)
        self._names = tuple(compiled.rule.name for compiled in self._compiled)
        self._matcher = CompiledRules([rule.queries for rule in self._compiled])
        scopes = [scope for compiled in self._compiled for scope in compiled.rule.feeds]
        self._every_feed = any(not compiled.rule.feeds for compiled in self._compiled)
        self._every_rule = not scopes  # no rule is limited to some feeds
        self._feed_names = frozenset(scope for scope in scopes if not scope.startswith("tag:"))
        self._feed_tags = frozenset(scope[4:] for scope in scopes if scope.startswith("tag:"))

    @classmethod
    def compile(cls, rules: Sequence[Rule], entities: Mapping[str, Sequence[str]]) -> RuleSet:
        """Parse every query of every rule; raises RuleSyntaxError for the first bad one."""
        return cls(
            _CompiledRule(rule, tuple(parse_query(query, entities) for query in rule.queries))
            for rule in rules
        )

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(compiled.rule for compiled in self._compiled)

    def match(self, entry: Entry, feed_tags: Collection[str] = ()) -> list[Match]:
        if not self._any_applies_to(entry.feed, feed_tags):
            return []
        return self.match_text(EntryText.from_entry(entry), entry.key, entry.feed, feed_tags)

    def match_text(
        self, text: EntryText, entry_key: str, feed_name: str, feed_tags: Collection[str] = ()
    ) -> list[Match]:
        """One Match per rule that applies to the feed and has a query that matches."""
        applies = None
        if not self._every_rule:
            compiled = self._compiled

            def applies(index: int) -> bool:
                return compiled[index].applies_to(feed_name, feed_tags)

        names = self._names
        return [
            Match(names[index], entry_key, terms)
            for index, terms in self._matcher.matches(text, applies)
        ]

    def match_text_reference(
        self, text: EntryText, entry_key: str, feed_name: str, feed_tags: Collection[str] = ()
    ) -> list[Match]:
        """What match_text returns, computed by evaluating every rule in turn."""
        matches = []
        for compiled in self._compiled:
            if compiled.applies_to(feed_name, feed_tags):
                found = compiled.match(text, entry_key)
                if found is not None:
                    matches.append(found)
        return matches

    def _any_applies_to(self, feed_name: str, feed_tags: Collection[str]) -> bool:
        return (
            self._every_feed
            or feed_name in self._feed_names
            or any(tag in self._feed_tags for tag in feed_tags)
        )
