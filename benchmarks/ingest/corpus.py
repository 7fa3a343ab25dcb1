"""The benchmark's corpus: news-like RSS 2.0 and Atom feeds, and rules that match some of them.

Everything comes from one seeded RNG, so two runs with the same arguments serve the same
bytes. Generation 1 is the first state of every feed; generation 2 changes a share of the
feeds (a few new entries at the top, the oldest ones dropped), as a news site would.

Standard library only: the server process imports it too.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

FUNCTION_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "is",
    "that",
    "for",
    "on",
    "it",
    "with",
    "as",
    "was",
    "by",
    "at",
    "be",
    "this",
    "from",
    "are",
    "have",
    "has",
    "had",
    "not",
    "but",
    "or",
    "an",
    "they",
    "which",
    "were",
    "their",
    "been",
    "will",
    "would",
    "there",
    "its",
    "more",
    "after",
    "also",
    "new",
    "who",
    "about",
    "when",
    "than",
    "up",
    "out",
    "into",
    "over",
    "two",
    "first",
    "last",
    "year",
    "said",
    "says",
    "could",
    "against",
    "between",
    "during",
    "under",
    "while",
    "other",
    "some",
    "all",
    "most",
    "many",
    "one",
    "three",
    "people",
    "government",
    "president",
    "minister",
    "officials",
    "country",
    "state",
    "city",
    "week",
    "day",
    "today",
    "report",
    "told",
]
SYLLABLES = [
    "ba",
    "be",
    "bi",
    "bo",
    "bu",
    "ca",
    "ce",
    "co",
    "cu",
    "da",
    "de",
    "di",
    "do",
    "du",
    "fa",
    "fe",
    "fi",
    "fo",
    "ga",
    "ge",
    "go",
    "gu",
    "ha",
    "he",
    "hi",
    "ho",
    "ja",
    "jo",
    "ka",
    "ke",
    "ki",
    "ko",
    "la",
    "le",
    "li",
    "lo",
    "lu",
    "ma",
    "me",
    "mi",
    "mo",
    "mu",
    "na",
    "ne",
    "ni",
    "no",
    "nu",
    "pa",
    "pe",
    "pi",
    "po",
    "pu",
    "ra",
    "re",
    "ri",
    "ro",
    "ru",
    "sa",
    "se",
    "si",
    "so",
    "su",
    "ta",
    "te",
    "ti",
    "to",
    "tu",
    "va",
    "ve",
    "vi",
    "vo",
    "za",
    "ze",
    "zo",
    "ar",
    "er",
    "ir",
    "or",
    "ur",
    "an",
    "en",
    "in",
    "on",
    "un",
    "al",
    "el",
    "il",
    "ol",
    "str",
    "tr",
    "pr",
    "gr",
    "br",
    "pl",
    "cl",
    "fl",
    "st",
    "sp",
    "sk",
]
ENDINGS = ("", "", "", "s", "ed", "ing", "tion", "ment", "er", "al", "ist", "ity")
ENTITIES: dict[str, list[str]] = {
    "Putin": ["Vladimir Putin", "Putin"],
    "Trump": ["Donald Trump", "Trump"],
    "Zelenskyy": ["Volodymyr Zelenskyy", "Zelenskyy", "Zelensky"],
    "Macron": ["Emmanuel Macron", "Macron"],
    "Xi": ["Xi Jinping"],
    "NATO": ["NATO", "North Atlantic Treaty Organization"],
    "EU": ["European Union", "EU"],
    "Kyiv": ["Kyiv", "Kiev"],
    "Gaza": ["Gaza"],
    "Musk": ["Elon Musk", "Musk"],
}
CATEGORIES = [
    "World",
    "Politics",
    "Business",
    "Economy",
    "Technology",
    "Science",
    "Health",
    "Sport",
    "Culture",
    "Europe",
    "Asia",
    "Americas",
    "Africa",
    "Opinion",
    "Analysis",
    "Energy",
    "Climate",
    "Markets",
    "Defence",
    "Elections",
]
AUTHORS = [
    "Anna Keller",
    "Brian Osei",
    "Carla Mendes",
    "Dmitri Volkov",
    "Elena Rossi",
    "Farid Haddad",
    "Grace Liu",
    "Hannah Berg",
    "Ivan Petrov",
    "Julia Novak",
    "Kenji Sato",
    "Laura Schmidt",
    "Marco Bianchi",
    "Nadia Karim",
]
VOCABULARY_SIZE = 20_000
NAME_SHARE = 0.01  # of sentences that name an entity
BASE_TIME = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Item:
    guid: str
    link: str
    title: str
    description: str  # HTML paragraphs
    content: str | None  # HTML paragraphs (content:encoded / Atom content), some feeds only
    author: str
    categories: tuple[str, ...]
    published: datetime


@dataclass(slots=True)
class Feed:
    index: int
    atom: bool
    with_content: bool
    items: list[Item] = field(default_factory=list)

    @property
    def path(self) -> str:
        return f"/feeds/{self.index:04d}.xml"


@dataclass(frozen=True, slots=True)
class Document:
    """One feed as the server sends it."""

    body: bytes
    content_type: str
    etag: str
    last_modified: str  # an HTTP date


class Writer:
    """Zipf-distributed words in sentences and paragraphs, with entity names now and then."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        made_up: dict[str, None] = {}
        while len(made_up) < VOCABULARY_SIZE - len(FUNCTION_WORDS):
            word = "".join(rng.choices(SYLLABLES, k=rng.choice((1, 2, 2, 3, 3, 3, 4))))
            word += rng.choice(ENDINGS)
            if len(word) >= 3 and word not in FUNCTION_WORDS:
                made_up.setdefault(word, None)
        self.words = [*FUNCTION_WORDS, *made_up]
        weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(self.words))]
        total, cumulative = 0.0, []
        for weight in weights:
            total += weight
            cumulative.append(total)
        self._cumulative = cumulative
        self._aliases = [alias for aliases in ENTITIES.values() for alias in aliases]

    def sentence(self, size: int) -> str:
        rng = self.rng
        words = rng.choices(self.words, cum_weights=self._cumulative, k=size)
        if rng.random() < 0.3:
            words[rng.randrange(size)] = str(rng.randint(2, 2025))
        if rng.random() < NAME_SHARE:
            words[rng.randrange(size)] = rng.choice(self._aliases)
        text = " ".join(words)
        return text[0].upper() + text[1:]

    def title(self, size: int) -> str:
        return self.sentence(size)

    def paragraphs(self, size: int) -> str:
        rng = self.rng
        sentences: list[str] = []
        left = size
        while left > 0:
            count = min(left, rng.randint(6, 22))
            sentences.append(self.sentence(count) + rng.choice(".....?!"))
            left -= count
        return "".join(
            f"<p>{' '.join(sentences[i : i + 3])}</p>" for i in range(0, len(sentences), 3)
        )


class Corpus:
    """All feeds, in generation 1 and generation 2, and the rules."""

    def __init__(
        self,
        *,
        feeds: int,
        entries: int,
        seed: int = 5,
        changed_share: float = 0.10,
        new_per_changed: int = 3,
    ) -> None:
        self.rng = random.Random(seed)
        self.writer = Writer(self.rng)
        self.entries = entries
        self._serial = 0
        self.feeds = [self._feed(index) for index in range(feeds)]
        self.first = {feed.path: self._document(feed, generation=1) for feed in self.feeds}
        changed = self.rng.sample(self.feeds, max(1, round(feeds * changed_share)))
        self.second: dict[str, Document] = {}
        for feed in sorted(changed, key=lambda feed: feed.index):
            fresh = [
                self._item(feed, BASE_TIME + timedelta(minutes=10 * (n + 1)))
                for n in range(new_per_changed)
            ]
            feed.items = [*reversed(fresh), *feed.items][:entries]
            self.second[feed.path] = self._document(feed, generation=2)
        self.new_in_second = new_per_changed * len(changed)

    def _feed(self, index: int) -> Feed:
        rng = self.rng
        feed = Feed(index=index, atom=rng.random() < 0.25, with_content=rng.random() < 0.35)
        feed.items = [
            self._item(feed, BASE_TIME - timedelta(minutes=37 * n + rng.randint(0, 30)))
            for n in range(self.entries)
        ]
        return feed

    def _item(self, feed: Feed, published: datetime) -> Item:
        rng, writer = self.rng, self.writer
        self._serial += 1
        slug = "-".join(writer.title(5).lower().split()[:5])
        link = f"https://news{feed.index}.example.com/{published:%Y/%m/%d}/{slug}-{self._serial}"
        if rng.random() < 0.2:  # tracking parameters, as many feeds add them
            link += f"?utm_source=rss&utm_medium=feed&utm_campaign=f{feed.index}"
        return Item(
            guid=f"urn:news{feed.index}:{self._serial}" if rng.random() < 0.5 else link,
            link=link,
            title=writer.title(rng.randint(7, 13)),
            description=writer.paragraphs(rng.randint(60, 100)),
            content=writer.paragraphs(rng.randint(300, 500)) if feed.with_content else None,
            author=rng.choice(AUTHORS),
            categories=tuple(rng.sample(CATEGORIES, rng.randint(1, 3))),
            published=published,
        )

    def _document(self, feed: Feed, *, generation: int) -> Document:
        body = (_atom(feed) if feed.atom else _rss(feed)).encode("utf-8")
        modified = BASE_TIME + timedelta(hours=generation - 1, seconds=feed.index)
        return Document(
            body=body,
            content_type="application/atom+xml" if feed.atom else "application/rss+xml",
            etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"',
            last_modified=format_datetime(modified, usegmt=True),
        )

    def rules_yaml(self, count: int, *, target: str) -> str:
        """`count` rules like people write them: specific words, phrases, entities, and
        AND/OR/NOT, so most rules match rarely and a few match often."""
        rng = random.Random(self.rng.random())
        words = self.writer.words
        common, mid, rare = words[60:400], words[1_000:6_000], words[8_000:]
        entities = list(ENTITIES)
        lines = ["entities:"]
        lines += [f"  {name}: [{', '.join(aliases)}]" for name, aliases in ENTITIES.items()]
        lines.append("rules:")
        for number in range(count):
            kind = rng.random()
            if kind < 0.02:
                query = rng.choice(("@Putin AND @Trump", "title:@Zelenskyy", "@NATO OR @EU"))
            elif kind < 0.25:
                query = rng.choice(rare)
            elif kind < 0.40:
                query = f'"{rng.choice(common)} {rng.choice(mid)}"'
            elif kind < 0.55:
                query = " AND ".join(rng.sample(mid, rng.choice((2, 2, 3))))
            elif kind < 0.65:
                query = "(" + " OR ".join(rng.sample(rare, rng.choice((2, 3)))) + ")"
            elif kind < 0.73:
                query = f"{rng.choice(rare)} AND NOT {rng.choice(mid)}"
            elif kind < 0.88:
                entity = rng.choice(entities)
                query = rng.choice(
                    (
                        f"@{entity} AND {rng.choice(mid)}",
                        f"@{entity} ({rng.choice(mid)} OR {rng.choice(mid)})",
                        f"title:@{entity}",
                    )
                )
            elif kind < 0.95:
                stem = rng.choice([word for word in mid if len(word) >= 7])
                query = f"{stem[:5]}* AND {rng.choice(mid)}"
            else:
                query = f"category:{rng.choice(CATEGORIES).lower()} AND {rng.choice(mid)}"
            quoted = query.replace("'", "''")
            lines.append(f"  - {{name: rule-{number:04d}, match: '{quoted}', notify: [{target}]}}")
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> None:
        """Generation 1 under folder/1/, the changed feeds of generation 2 under folder/2/,
        with a headers file per document (content type, ETag, Last-Modified)."""
        for generation, documents in ((1, self.first), (2, self.second)):
            for path, document in documents.items():
                file = folder / str(generation) / path.lstrip("/")
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_bytes(document.body)
                file.with_suffix(".headers").write_text(
                    f"{document.content_type}\n{document.etag}\n{document.last_modified}\n"
                )


def read_documents(folder: Path) -> list[dict[str, Document]]:
    """What Corpus.write wrote: one {path: Document} per generation, 1 first."""
    generations: list[dict[str, Document]] = []
    for generation in (1, 2):
        documents: dict[str, Document] = {}
        for file in sorted((folder / str(generation)).rglob("*.xml")):
            content_type, etag, last_modified = (
                file.with_suffix(".headers").read_text().splitlines()
            )
            path = "/" + file.relative_to(folder / str(generation)).as_posix()
            documents[path] = Document(file.read_bytes(), content_type, etag, last_modified)
        generations.append(documents)
    return generations


def _rss(feed: Feed) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">'
        "<channel>",
        f"<title>News {feed.index}</title>",
        f"<link>https://news{feed.index}.example.com/</link>",
        f"<description>Latest stories from news site {feed.index}</description>",
        "<language>en</language>",
        f"<lastBuildDate>{format_datetime(feed.items[0].published)}</lastBuildDate>",
    ]
    for item in feed.items:
        permalink = "" if item.guid == item.link else ' isPermaLink="false"'
        out.append(
            "<item>"
            f"<title>{escape(item.title)}</title>"
            f"<link>{escape(item.link)}</link>"
            f"<guid{permalink}>{escape(item.guid)}</guid>"
            f"<pubDate>{format_datetime(item.published)}</pubDate>"
            f"<dc:creator>{escape(item.author)}</dc:creator>"
            + "".join(f"<category>{escape(name)}</category>" for name in item.categories)
            + f"<description>{escape(item.description)}</description>"
            + (
                f"<content:encoded><![CDATA[{item.content}]]></content:encoded>"
                if item.content
                else ""
            )
            + "</item>"
        )
    out.append("</channel></rss>\n")
    return "\n".join(out)


def _atom(feed: Feed) -> str:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>News {feed.index}</title>",
        f'<link href="https://news{feed.index}.example.com/"/>',
        f"<id>urn:news{feed.index}:feed</id>",
        f"<updated>{feed.items[0].published.isoformat()}</updated>",
    ]
    for item in feed.items:
        stamp = item.published.isoformat()
        out.append(
            "<entry>"
            f"<title>{escape(item.title)}</title>"
            f'<link rel="alternate" href="{escape(item.link)}"/>'
            f"<id>{escape(item.guid)}</id>"
            f"<published>{stamp}</published><updated>{stamp}</updated>"
            f"<author><name>{escape(item.author)}</name></author>"
            + "".join(f'<category term="{escape(name)}"/>' for name in item.categories)
            + f'<summary type="html">{escape(item.description)}</summary>'
            + (f'<content type="html">{escape(item.content)}</content>' if item.content else "")
            + "</entry>"
        )
    out.append("</feed>\n")
    return "\n".join(out)


def feed_paths(documents: Sequence[dict[str, Document]]) -> list[str]:
    return sorted(documents[0])
