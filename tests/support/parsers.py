"""Parsers for ParsePool tests, run by real worker processes (they import this module by name,
so it imports nothing heavy: what a worker has loaded is what some tests look at)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Mapping

from watcher.models import ParsedFeed
from watcher.parse import parse_feed

SPIN = b"<!-- spin -->"


def loaded_modules(body: bytes, headers: Mapping[str, str] | None) -> ParsedFeed:
    """The names of the modules the worker has imported, space-separated, as the title."""
    return ParsedFeed(title=" ".join(sorted(sys.modules)), link=None, entries=())


def frozen_objects(body: bytes, headers: Mapping[str, str] | None) -> ParsedFeed:
    """How many objects the worker's garbage collector leaves alone (gc.freeze), as the title."""
    return ParsedFeed(title=str(gc.get_freeze_count()), link=None, entries=())


def spinning_parser(body: bytes, headers: Mapping[str, str] | None) -> ParsedFeed:
    """parse_feed, except that a body containing SPIN keeps the CPU busy forever (a runaway
    parse, as feedparser's regexes can be on hostile input)."""
    if SPIN in body:
        count = 0
        while True:
            count += 1
    return parse_feed(body, headers)
