"""The exceptions watcher raises on purpose. Everything a user can cause says where."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a user's file: 1-based line and column, like compilers print them."""

    path: Path | str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


class WatcherError(Exception):
    """Base of every error watcher raises deliberately."""


class ConfigError(WatcherError):
    """A config or rules file is wrong. The message names file:line:col and the fix."""

    def __init__(self, message: str, location: Location | None = None, hint: str = "") -> None:
        self.message = message
        self.location = location
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.location}: " if self.location else ""
        fix = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{where}error: {self.message}{fix}"


class RuleSyntaxError(WatcherError):
    """A query string cannot be parsed.

    ``offset`` is the 0-based index of the offending character in the query text and
    ``length`` how many characters the caret should cover; the config loader turns
    them into file:line:col.
    """

    def __init__(self, message: str, query: str, offset: int, length: int = 1) -> None:
        self.message = message
        self.query = query
        self.offset = max(0, min(offset, len(query)))
        self.length = max(1, length)
        super().__init__(self.render())

    def caret_line(self) -> str:
        return " " * self.offset + "^" * self.length

    def render(self) -> str:
        return f"{self.message}\n  {self.query}\n  {self.caret_line()}"


class StoreError(WatcherError):
    """The store cannot be opened or used (bad URL, unreachable server, outdated schema)."""


class DeliveryError(WatcherError):
    """A notification target could not be set up (bad Apprise URL)."""
