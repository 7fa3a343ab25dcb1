"""Rule matching benchmark: the compiled matcher against a naive regex-per-rule loop.

Run: .venv/bin/python benchmarks/rules_bench.py [--entries N] [--seed S]

Generates news-like entries (title ~10 words, summary ~60, content ~300; Zipf-distributed
words from a vocabulary of 5,000 including names, plus 3% rare words from a long tail) and
rule sets of 10 to 10,000 rules (terms, phrases, prefixes, AND/OR/NOT, entities, a few NEAR
and /regex/ rules), then times matching every entry against each rule set. Everything is
seeded: two runs generate the same data. See benchmarks/README.md for the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from watcher.models import Entry, Rule
from watcher.rules.matcher import EntryText, RuleSet
from watcher.rules.query import (
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

RULE_COUNTS = (10, 100, 1_000, 10_000)
VOCABULARY_SIZE = 5_000
TAIL_SIZE = 25_000  # rare words: real news has a long tail a few thousand words lack
TAIL_SHARE = 0.03  # of the words of a text
NAME_SHARE = 0.05  # of sentences that name "Vladimir Putin" or "Donald Trump"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FUNCTION_WORDS = _words(
    "the of and to in a is that for on it with as was by at be this from are have has had "
    "not but or an they which you were their been will would there its more after also new "
    "who about when than up out into over two over first last year said says could than "
    "against between during under while other some all most many one three people government "
    "president minister officials country state city week day today news report told"
)
NAMES = _words(
    "Putin Trump Zelenskyy Biden Macron Scholz Xi Modi Erdogan Netanyahu Starmer Meloni "
    "Sunak Lula Milei Kishida Orban Harris Vance Musk Ukraine Russia Kyiv Moscow Washington "
    "Beijing Gaza Israel Iran China Europe Brussels NATO Kremlin Pentagon Tesla Google"
)
ENTITIES = {
    "Putin": ["Vladimir Putin", "Putin", "Путин"],
    "Trump": ["Donald Trump", "Trump", "Трамп"],
    "Zelenskyy": ["Volodymyr Zelenskyy", "Zelenskyy", "Zelensky", "Зеленський"],
    "Biden": ["Joe Biden", "Biden"],
    "Macron": ["Emmanuel Macron", "Macron"],
    "Xi": ["Xi Jinping"],
    "NATO": ["NATO", "North Atlantic Treaty Organization"],
    "Musk": ["Elon Musk", "Musk"],
}
SYLLABLES = _words(
    "ba be bi bo bu ca ce co cu da de di do du fa fe fi fo ga ge go gu ha he hi ho ja jo ka "
    "ke ki ko la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa "
    "se si so su ta te ti to tu va ve vi vo za ze zo ar er ir or ur an en in on un al el il "
    "ol str tr pr gr br pl cl fl st sp sk"
)
ENDINGS = ("", "", "", "s", "ed", "ing", "tion", "ment", "er", "al", "ist", "ity")


def vocabulary(rng: random.Random) -> tuple[list[str], list[str]]:
    """Words by rank (function words first, names among the frequent ones, then made-up
    words), and the tail of rare words."""
    made_up: dict[str, None] = {}
    while len(made_up) < VOCABULARY_SIZE + TAIL_SIZE - len(FUNCTION_WORDS) - len(NAMES):
        syllables = rng.choices(SYLLABLES, k=rng.choice((1, 2, 2, 3, 3, 3, 4)))
        word = "".join(syllables) + rng.choice(ENDINGS)
        if len(word) >= 3 and word not in FUNCTION_WORDS:
            made_up.setdefault(word, None)
    words = [*FUNCTION_WORDS, *made_up]
    for name in NAMES:  # names rank between 150 and 1,500: frequent, but not stop words
        words.insert(rng.randrange(150, 1_500), name)
    return words[:VOCABULARY_SIZE], words[VOCABULARY_SIZE:]


class Writer:
    """Zipf-distributed text with sentences, punctuation, numbers, and paragraphs."""

    def __init__(self, words: Sequence[str], tail: Sequence[str], rng: random.Random) -> None:
        self._words = words
        self._tail = tail
        self._rng = rng
        weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(words))]
        self._cumulative = list(_accumulate(weights))

    def words(self, count: int) -> list[str]:
        words = self._rng.choices(self._words, cum_weights=self._cumulative, k=count)
        for _ in range(sum(self._rng.random() < TAIL_SHARE for _ in range(count))):
            words[self._rng.randrange(count)] = self._rng.choice(self._tail)
        return words

    def text(self, count: int, *, html: bool = False) -> str:
        rng = self._rng
        sentences = []
        left = count
        while left > 0:
            size = min(left, rng.randint(6, 22))
            words = self.words(size)
            if rng.random() < 0.3:
                words[rng.randrange(size)] = str(rng.randint(2, 2025))
            if rng.random() < NAME_SHARE:
                words[rng.randrange(size)] = rng.choice(("Vladimir Putin", "Donald Trump"))
            sentence = " ".join(words)
            sentences.append(sentence[0].upper() + sentence[1:] + rng.choice(".....?!"))
            left -= size
        if not html:
            return " ".join(sentences)
        paragraphs = [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)]
        return "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs)


def _accumulate(values: Sequence[float]) -> list[float]:
    total, out = 0.0, []
    for value in values:
        total += value
        out.append(total)
    return out


def entries(count: int, writer: Writer) -> list[Entry]:
    return [
        Entry(
            feed="bench",
            key=f"entry-{index}",
            link_key=None,
            content_hash="",
            title=writer.text(10).rstrip(".?!"),
            link=f"https://news.example.com/{index}",
            summary=writer.text(60),
            content=writer.text(300, html=True),
            author="Staff",
            categories=("World",),
        )
        for index in range(count)
    ]


class RuleWriter:
    """Queries like people write them: specific words, so most rules match rarely."""

    def __init__(self, words: Sequence[str], tail: Sequence[str], rng: random.Random) -> None:
        self._rng = rng
        self._tail = list(tail)
        self._uncommon = words[3_000:]  # each in about 0.4% of entries
        self._mid = words[300:3_000]
        self._prefixable = [w for w in self._tail if len(w) >= 8]

    def _rare(self) -> str:
        return self._rng.choice(self._tail if self._rng.random() < 0.95 else self._uncommon)

    def query(self) -> str:
        rng, mid = self._rng, self._mid
        kind = rng.random()
        if kind < 0.0005:  # a few broad rules that match often
            return rng.choice(("title:@Trump", "@Putin", "ukraine OR kyiv", "@Musk"))
        if kind < 0.30:
            return self._rare()
        if kind < 0.42:
            return f'"{rng.choice(mid)} {rng.choice(mid)}"'
        if kind < 0.50:
            word = rng.choice(self._prefixable)
            return word[: rng.randint(6, len(word) - 1)] + "*"
        if kind < 0.68:
            return " AND ".join(rng.sample(mid, rng.choice((2, 2, 3))))
        if kind < 0.76:
            return "(" + " OR ".join(self._rare() for _ in range(rng.choice((2, 3)))) + ")"
        if kind < 0.83:
            return f"{self._rare()} -{rng.choice(mid)}"
        if kind < 0.93:
            entity = rng.choice(list(ENTITIES))
            return rng.choice(
                (
                    f"@{entity} AND {self._rare()}",
                    f"@{entity} ({self._rare()} OR {self._rare()})",
                    f"title:@{entity} {rng.choice(mid)}",
                )
            )
        if kind < 0.97:
            return rng.choice(
                (
                    f"@{rng.choice(list(ENTITIES))} NEAR/5 {rng.choice(mid)}",
                    f"{rng.choice(mid)} NEAR/3 {rng.choice(mid)}",
                )
            )
        word = rng.choice(self._prefixable)
        return rng.choice(
            (
                f"/{word[:4]}[a-z]* [0-9]+/",
                f"/[0-9]+ {word[:5]}/ AND {rng.choice(mid)}",
                f"/\\b{word[:6]}\\w*/",
            )
        )

    def rules(self, count: int) -> list[Rule]:
        return [
            Rule(name=f"rule-{index}", queries=(self.query(),), notify=("console",))
            for index in range(count)
        ]


def naive_patterns(rules: Sequence[Rule]) -> list[re.Pattern[str]]:
    """One alternation per rule of what it looks for (its NOT parts left out): the loop a
    matcher without an index would run. It only says whether some term occurs, which is less
    work than deciding the rule, so its times flatter it."""
    patterns = []
    for rule in rules:
        parts = [part for query in rule.queries for part in _positive(parse_query(query, ENTITIES))]
        patterns.append(re.compile("|".join(parts)))
    return patterns


def _positive(node: Node) -> list[str]:
    match node:
        case Term(token=token, prefix=prefix):
            return [rf"\b{re.escape(token)}\w*" if prefix else rf"\b{re.escape(token)}\b"]
        case Phrase(tokens=tokens):
            return [r"\b" + r"\W+".join(map(re.escape, tokens)) + r"\b"]
        case Entity(aliases=aliases):
            return [r"\b" + r"\W+".join(map(re.escape, alias)) + r"\b" for alias in aliases]
        case Regex(pattern=pattern):
            return [pattern]
        case Field(child=child):
            return _positive(child)
        case Not():
            return []
        case And(children=children) | Or(children=children):
            return [part for child in children for part in _positive(child)]
        case Near(left=left, right=right):
            return [*_positive(left), *_positive(right)]


def timed(action: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


@dataclasses.dataclass(frozen=True)
class Row:
    rules: int
    compile_time: float
    match_time: float
    matches: int
    naive_time: float  # for every entry; scaled up when fewer were timed
    naive_entries: int  # how many entries the naive loop actually ran over


def measure(
    rules: Sequence[Rule], items: Sequence[Entry], texts: Sequence[EntryText], naive_searches: int
) -> Row:
    start = time.perf_counter()
    ruleset = RuleSet.compile(rules, ENTITIES)
    compile_time = time.perf_counter() - start

    def run() -> int:
        return sum(
            len(ruleset.match_text(text, item.key, item.feed))
            for text, item in zip(texts, items, strict=True)
        )

    run()  # warm up: RE2 builds its DFA states as texts need them
    match_time = min(timed(run) for _ in range(3))
    for text, item in zip(texts[:50], items[:50], strict=True):
        compiled = ruleset.match_text(text, item.key, item.feed)
        reference = ruleset.match_text_reference(text, item.key, item.feed)
        assert compiled == reference, "the compiled matcher disagrees with the reference"

    patterns = naive_patterns(rules)
    sample = max(1, min(len(items), naive_searches // len(rules)))
    lowered = [f"{item.title}\n{item.summary}\n{item.content}".lower() for item in items[:sample]]

    def naive() -> None:
        for text in lowered:
            for pattern in patterns:
                pattern.search(text)

    naive_time = timed(naive) * len(items) / sample
    return Row(len(rules), compile_time, match_time, run(), naive_time, sample)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument(
        "--naive-searches",
        type=int,
        default=200_000,
        help="regex searches the naive loop runs per rule set (over fewer entries, scaled up)",
    )
    args = parser.parse_args()

    rng = random.Random(args.seed)
    words, tail = vocabulary(rng)
    items = entries(args.entries, Writer(words, tail, rng))
    all_rules = RuleWriter(words, tail, rng).rules(max(RULE_COUNTS))

    print(f"load average before the run: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    texts: list[EntryText] = []
    build = timed(lambda: texts.extend(EntryText.from_entry(item) for item in items))
    # Best of 3, as the matching is: the ratio printed at the end divides by it.
    build = min(
        build, *(timed(lambda: [EntryText.from_entry(item) for item in items]) for _ in range(2))
    )
    fields = ("title", "summary", "content")
    tokens = statistics.mean(sum(len(text.tokens(f)) for f in fields) for text in texts)
    print(f"{len(items):,} entries, {tokens:.0f} tokens each (title, summary, content)")
    print(
        "EntryText.from_entry (normalize, tokenize, join; per entry, the same for any rules; "
        "best of 3): "
        f"{build:.2f} s, {build / len(items) * 1e6:.0f} µs per entry\n"
    )
    header = (
        f"{'rules':>6} | {'compile':>8} | {'match all':>9} | {'per entry':>9} | "
        f"{'matches':>7} | {'naive':>9} | {'speedup':>7}"
    )
    print(header)
    print("-" * len(header))
    rows = [measure(all_rules[:count], items, texts, args.naive_searches) for count in RULE_COUNTS]
    for row in rows:
        per_entry = row.match_time / len(items) * 1e6
        print(
            f"{row.rules:>6,} | {row.compile_time:>7.3f}s | {row.match_time:>8.3f}s | "
            f"{per_entry:>7.1f}µs | {row.matches:>7,} | {row.naive_time:>8.1f}s | "
            f"{row.naive_time / row.match_time:>6.0f}×"
        )
    print()
    for row in rows:
        if row.naive_entries < len(items):
            print(
                f"* naive at {row.rules:,} rules: timed on {row.naive_entries:,} entries, "
                f"scaled to {len(items):,}"
            )
    print("* match all: best of 3 runs over every entry's EntryText (built once, above),")
    print("  terms included; checked against the reference evaluator on 50 entries.")
    first, last = rows[0], rows[-1]
    print(
        f"* {last.rules:,} rules take {last.match_time / first.match_time:.1f}× the time of "
        f"{first.rules:,}, matching alone."
    )
    # What an entry costs the daemon: EntryText once, whatever the rules, then the matching.
    build_each, first_each, last_each = (
        seconds / len(items) * 1e6 for seconds in (build, first.match_time, last.match_time)
    )
    print(
        f"* Per entry with EntryText.from_entry: {build_each + last_each:.1f} µs at "
        f"{last.rules:,} rules against {build_each + first_each:.1f} µs at {first.rules:,}, "
        f"{(build_each + last_each) / (build_each + first_each):.2f}×."
    )


if __name__ == "__main__":
    main()
