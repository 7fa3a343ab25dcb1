"""What the parser processes do for one feed's body: parse it, key each entry, and tokenise
each entry for the matcher. The main thread is then left with storing and matching.

The matchable text (EntryText) travels as each field's tokens joined by single spaces
(entry_text.joined_fields, () for a field without tokens) and is rebuilt with
EntryText.from_joined by the receiver, which splits the tokens off only if something asks
for them (the compiled matcher reads the joined text): tokens never hold a space, and the
joined strings pickle to less than half the size of EntryText objects and load a third
faster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from watcher import identity
from watcher.models import Entry, ParsedFeed
from watcher.parse import parse_feed
from watcher.rules.entry_text import EntryText, joined_fields

# A picklable module-level function (the workers import it by name).
Parser = Callable[[bytes, Mapping[str, str] | None], ParsedFeed]
# A field's tokens: joined by spaces, or as they are.
_Packed = tuple[tuple[str, str | tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class PreparedFeed:
    """A feed's body parsed for one feed: ``feed`` without its entries (they are in
    ``entries``, keyed), and the matchable text of each entry."""

    feed: ParsedFeed
    entries: tuple[Entry, ...] = ()
    texts: tuple[_Packed, ...] = ()

    @classmethod
    def failed(cls, error: str) -> PreparedFeed:
        return cls(ParsedFeed.failed(error))

    def text(self, index: int) -> EntryText:
        """The EntryText of entries[index]."""
        return EntryText.from_joined(dict(self.texts[index]))


def prepare_feed(
    body: bytes, headers: Mapping[str, str] | None, feed_name: str, parser: Parser = parse_feed
) -> PreparedFeed:
    """Parse, key and tokenise (the job of a parser process; never raises for a bad feed)."""
    parsed = parser(body, headers)
    entries = tuple(identity.keyed(entry, feed_name) for entry in parsed.entries)
    texts = tuple(tuple(joined_fields(entry).items()) for entry in entries)
    return PreparedFeed(dataclasses.replace(parsed, entries=()), entries, texts)
