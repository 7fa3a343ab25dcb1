"""Problems a parsed query provably has: it matches every entry, or none, or nearly every one.

``problems(node)`` reports only what it can prove. The query's atoms are its terms, phrases,
prefixes, patterns and NEARs, each with the fields it looks at (an entity is the OR of its
aliases). Every assignment of true/false to the atoms is tried at once: an atom is a column
of bits, one bit per assignment, and AND, OR, NOT are operations on whole columns. Only
assignments that some entry could produce count; the implications that rule the others out
are ones that hold for every entry:

- a phrase implies each run of its tokens (``"a b c"`` implies ``"b c"`` and ``b``), and
  every prefix of one of its tokens (``putin`` implies ``put*``); ``ab*`` implies ``a*``;
- in fewer fields implies in more (``title:x`` implies ``x``);
- ``a NEAR/n b`` implies a and b.

So ``a AND NOT a``, ``"a b" -a`` and ``x AND NOT x*`` never match, ``a OR NOT a`` always
does; ``a AND NOT b`` is fine, since nothing says whether b occurs. A query true when none of
its atoms occurs (``NOT x``, ``a OR -b``) matches nearly every entry.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Generator, Iterator

from watcher.rules.query import (
    DEFAULT_FIELDS,
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
)
from watcher.rules.text import normalize

__all__ = ["MAX_ATOMS", "Finding", "RuleProblem", "Severity", "problems"]

MAX_ATOMS = 16  # 2**16 assignments; a query with more distinct atoms gets no truth table


class Severity(enum.StrEnum):
    ERROR = "error"  # the rule is useless as written: it matches every entry or none
    WARNING = "warning"  # probably not what was meant


class Finding(enum.StrEnum):
    ALWAYS = "always"  # true for every entry (the query: an error; a part of it: a warning)
    NEVER = "never"  # true for no entry (likewise)
    NOTHING_REQUIRED = "nothing-required"  # true for an entry without any of its terms
    PATTERN_CASE = "pattern-case"  # a /pattern/ letter that normalized text never contains


@dataclasses.dataclass(frozen=True, slots=True)
class RuleProblem:
    """What is wrong, and where in the query text (offset and length, like RuleSyntaxError)."""

    message: str
    offset: int
    length: int
    severity: Severity
    finding: Finding


def problems(node: Node) -> list[RuleProblem]:
    """The problems of a parsed query, most serious first; empty for an ordinary query."""
    found = _truth_problems(node)
    if not found and _when_absent(node, DEFAULT_FIELDS):
        found.append(
            _problem(
                node,
                Severity.WARNING,
                Finding.NOTHING_REQUIRED,
                "this query matches every entry that contains none of its terms, so nearly "
                "every entry: nothing in it is required. Add a term it must contain, as in "
                "putin -trump",
            )
        )
    found.extend(_pattern_problems(node))
    return found


def _problem(node: Node, severity: Severity, finding: Finding, message: str) -> RuleProblem:
    return RuleProblem(message, node.offset, max(1, node.length), severity, finding)


# --- truth tables ------------------------------------------------------------------------

# An atom: (fields, what) with what one of ("tokens", tuple), ("prefix", str),
# ("pattern", str) or ("near", Near node).
_Atom = tuple[frozenset[str], tuple[str, object]]


def _truth_problems(node: Node) -> list[RuleProblem]:
    atoms = list(dict.fromkeys(_atoms(node, DEFAULT_FIELDS)))
    if not atoms or len(atoms) > MAX_ATOMS:
        return []
    table = _Table(atoms)
    value = table.value(node, DEFAULT_FIELDS)
    if table.always(value):
        return [
            _problem(
                node,
                Severity.ERROR,
                Finding.ALWAYS,
                "this query matches every entry, whatever the entry contains",
            )
        ]
    if table.never(value):
        return [
            _problem(
                node,
                Severity.ERROR,
                Finding.NEVER,
                "this query can never match: no entry can hold what it requires "
                "without what it excludes",
            )
        ]
    return list(_constant_parts(node, DEFAULT_FIELDS, table))


def _constant_parts(node: Node, scope: tuple[str, ...], table: _Table) -> Iterator[RuleProblem]:
    """The outermost parts below ``node`` that are always or never true."""
    for child, child_scope in _children(node, scope):
        value = table.value(child, child_scope)
        if table.always(value):
            yield _problem(
                child,
                Severity.WARNING,
                Finding.ALWAYS,
                "this part is true for every entry, so it changes nothing in the query",
            )
        elif table.never(value):
            yield _problem(
                child,
                Severity.WARNING,
                Finding.NEVER,
                "this part can never match: no entry can hold what it requires without "
                "what it excludes",
            )
        else:
            yield from _constant_parts(child, child_scope, table)


def _children(node: Node, scope: tuple[str, ...]) -> list[tuple[Node, tuple[str, ...]]]:
    match node:
        case And(children=children) | Or(children=children):
            return [(child, scope) for child in children]
        case Not(child=child):
            return [(child, scope)]
        case Field(field=field, child=child):
            return [(child, (field,))]
        case _:
            return []  # leaves, and NEAR, whose sides are atoms


def _atoms(node: Node, scope: tuple[str, ...]) -> Iterator[_Atom]:
    fields = frozenset(scope)
    match node:
        case Term(token=token, prefix=True):
            yield fields, ("prefix", token)
        case Term(token=token):
            yield fields, ("tokens", (token,))
        case Phrase(tokens=tokens):
            yield fields, ("tokens", tokens)
        case Entity(aliases=aliases):
            for alias in aliases:
                yield fields, ("tokens", alias)
        case Regex(pattern=pattern):
            yield fields, ("pattern", pattern)
        case Near(left=left, right=right):
            yield fields, ("near", node)
            yield from _atoms(left, scope)
            yield from _atoms(right, scope)
        case Field(field=field, child=child):
            yield from _atoms(child, (field,))
        case Not(child=child):
            yield from _atoms(child, scope)
        case And(children=children) | Or(children=children):
            for child in children:
                yield from _atoms(child, scope)


class _Table:
    """Every assignment of the atoms at once: bit i of a column is its value in assignment i."""

    def __init__(self, atoms: list[_Atom]) -> None:
        self._columns = {atom: _column(index, len(atoms)) for index, atom in enumerate(atoms)}
        self._all = (1 << (1 << len(atoms))) - 1
        valid = self._all
        for atom, column in self._columns.items():
            for other, other_column in self._columns.items():
                if atom != other and _implies(atom, other):
                    valid &= ~column | other_column
            fields, (kind, what) = atom
            if kind == "near" and isinstance(what, Near):
                scope = tuple(sorted(fields))
                sides = self.value(what.left, scope) & self.value(what.right, scope)
                valid &= ~column | sides
        self._valid = valid  # the assignments some entry can produce

    def always(self, value: int) -> bool:
        return self._valid & ~value == 0

    def never(self, value: int) -> bool:
        return self._valid & value == 0

    def value(self, node: Node, scope: tuple[str, ...]) -> int:
        fields = frozenset(scope)
        match node:
            case Term(token=token, prefix=True):
                return self._columns[fields, ("prefix", token)]
            case Term(token=token):
                return self._columns[fields, ("tokens", (token,))]
            case Phrase(tokens=tokens):
                return self._columns[fields, ("tokens", tokens)]
            case Entity(aliases=aliases):
                column = 0
                for alias in aliases:
                    column |= self._columns[fields, ("tokens", alias)]
                return column
            case Regex(pattern=pattern):
                return self._columns[fields, ("pattern", pattern)]
            case Near():
                return self._columns[fields, ("near", node)]
            case Field(field=field, child=child):
                return self.value(child, (field,))
            case Not(child=child):
                return self._all ^ self.value(child, scope)
            case And(children=children):
                column = self._all
                for child in children:
                    column &= self.value(child, scope)
                return column
            case Or(children=children):
                column = 0
                for child in children:
                    column |= self.value(child, scope)
                return column


def _column(index: int, count: int) -> int:
    """Bit i set iff bit ``index`` of i is: blocks of 2**index zeros then ones, repeated."""
    size = 1 << index
    column = ((1 << size) - 1) << size
    width = 2 * size
    while width < 1 << count:
        column |= column << width
        width *= 2
    return column


def _implies(atom: _Atom, other: _Atom) -> bool:
    """True only when every entry where ``atom`` holds also has ``other``."""
    fields, (kind, what) = atom
    other_fields, (other_kind, other_what) = other
    if not fields <= other_fields:
        return False
    if kind == other_kind and what == other_what:
        return True
    if kind == "tokens" and isinstance(what, tuple):
        if other_kind == "tokens" and isinstance(other_what, tuple):
            return _contains_run(what, other_what)
        if other_kind == "prefix" and isinstance(other_what, str):
            return any(token.startswith(other_what) for token in what)
    if kind == "prefix" and other_kind == "prefix":
        return isinstance(what, str) and isinstance(other_what, str) and what.startswith(other_what)
    return False


def _contains_run(tokens: tuple[str, ...], run: tuple[str, ...]) -> bool:
    size = len(run)
    return any(tokens[start : start + size] == run for start in range(len(tokens) - size + 1))


def _when_absent(node: Node, scope: tuple[str, ...]) -> bool:
    """Whether the query matches an entry in which none of its atoms occurs (an empty one)."""
    match node:
        case Not(child=child):
            return not _when_absent(child, scope)
        case And(children=children):
            return all(_when_absent(child, scope) for child in children)
        case Or(children=children):
            return any(_when_absent(child, scope) for child in children)
        case Field(field=field, child=child):
            return _when_absent(child, (field,))
        case _:
            return False  # a term, phrase, entity, pattern or NEAR needs some text


# --- patterns ----------------------------------------------------------------------------


def _pattern_problems(node: Node) -> Iterator[RuleProblem]:
    """Letters a /pattern/ names that normalized text never contains (capitals, accents)."""
    match node:
        case Regex(pattern=pattern):
            ignore_case = _has_flag(pattern, "i")
            for index, char in _literal_letters(pattern):
                normal = normalize(char)
                expected = char.casefold() if ignore_case else char
                if normal != expected:
                    yield RuleProblem(
                        f'the pattern looks for "{char}", which the text it runs over never '
                        "contains: that text is lower case, without accents. Write "
                        f'"{normal}" instead',
                        node.offset + 1 + index,
                        1,
                        Severity.WARNING,
                        Finding.PATTERN_CASE,
                    )
        case Field(child=child) | Not(child=child):
            yield from _pattern_problems(child)
        case And(children=children) | Or(children=children):
            for child in children:
                yield from _pattern_problems(child)
        case _:
            return


def _literal_letters(pattern: str) -> Iterator[tuple[int, str]]:
    """(index, letter) of the letters RE2 reads literally; escapes, classes like [:alpha:],
    flags and group names are skipped, \\Q…\\E is read as literal text."""
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\":
            index = yield from _escape(pattern, index)
        elif pattern.startswith(("(?P<", "(?<"), index):
            index = _past(pattern, ">", index)
        elif pattern.startswith("(?", index):
            index = _past_flags(pattern, index)
        elif pattern.startswith("[:", index) or pattern.startswith("[^:", index):
            index = _past(pattern, ":]", index) if ":]" in pattern[index:] else index + 1
        else:
            if char.isalpha():
                yield index, char
            index += 1


def _escape(pattern: str, index: int) -> Generator[tuple[int, str], None, int]:
    """Skips the escape at ``index``; yields the letters of a \\Q…\\E. Returns where it ends."""
    kind = pattern[index + 1 : index + 2]
    if kind == "Q":
        end = pattern.find("\\E", index + 2)
        end = len(pattern) if end == -1 else end
        for offset, char in enumerate(pattern[index + 2 : end]):
            if char.isalpha():
                yield index + 2 + offset, char
        return end + 2
    if kind in ("p", "P", "x") and pattern[index + 2 : index + 3] == "{":
        return _past(pattern, "}", index)
    if kind in ("p", "P"):
        return index + 3  # \pL
    if kind == "x":
        return index + 4  # \x41
    return index + 2


def _past(pattern: str, end: str, index: int) -> int:
    found = pattern.find(end, index)
    return len(pattern) if found == -1 else found + len(end)


def _past_flags(pattern: str, index: int) -> int:
    """Past "(?flags)" or "(?flags:" at ``index``."""
    position = index + 2
    while position < len(pattern) and pattern[position] not in "):":
        position += 1
    return position + 1


def _has_flag(pattern: str, flag: str) -> bool:
    index = pattern.find("(?")
    while index != -1:
        end = _past_flags(pattern, index)
        flags = pattern[index + 2 : end - 1]
        on = flags.split("-", 1)[0]
        if flag in on and not flags.startswith(("P<", "<")):
            return True
        index = pattern.find("(?", index + 2)
    return False
