"""The rule query language: query text -> a small immutable syntax tree.

Grammar, loosest binding first (DESIGN.md "Query language"):

    query   := or EOF
    or      := and ("OR" and)*
    and     := near (["AND"] near)*             adjacent operands mean AND
    near    := unary ["NEAR/n" unary]           each side a term, phrase, @Entity or OR-group
    unary   := ("NOT" | "-") unary | primary    "-" only at the start of a word, touching it
    primary := word | word* | "phrase" | @Entity | /regex/ | "(" or ")" | field:primary

A word is everything up to whitespace, a parenthesis or a double quote. It is normalized
like entry text (watcher.rules.text), so a word that becomes several tokens (``Putin–Trump``,
``U.S.``) is a phrase. AND, OR, NOT and NEAR/n are operators only in upper case.

``/pattern/`` is an RE2 regular expression, kept exactly as written (``\\/`` is a slash inside
it). It runs over the normalized text of a field (its tokens joined by single spaces), which
is lower case and has no diacritics, so patterns are written in lower case; there are no
flags such as ``/i``.

Every node records where it came from (offset and length in the query text) so errors and
tools can point at it; those two, and the text as written, do not take part in equality, so
trees compare by meaning.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import re
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from watcher.errors import RuleSyntaxError
from watcher.rules.patterns import pattern_error
from watcher.rules.text import tokenize

__all__ = [
    "DEFAULT_FIELDS",
    "FIELDS",
    "MAX_DEPTH",
    "And",
    "Entity",
    "Field",
    "Near",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Regex",
    "Term",
    "parse_query",
]

FIELDS = ("title", "summary", "content", "author", "category", "link", "feed")
DEFAULT_FIELDS = ("title", "summary", "content")  # where a term without field: looks
MAX_DEPTH = 50  # nested parentheses, NOTs and fields; keeps recursion far from Python's limit


@dataclasses.dataclass(frozen=True, slots=True)
class _Located:
    offset: int = dataclasses.field(default=0, compare=False, kw_only=True)
    length: int = dataclasses.field(default=0, compare=False, kw_only=True)

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclasses.dataclass(frozen=True, slots=True)
class Term(_Located):
    """One token; with ``prefix`` also every token that starts with it (``sanction*``)."""

    token: str
    prefix: bool = False
    written: str = dataclasses.field(default="", compare=False, kw_only=True)

    @property
    def label(self) -> str:
        """What a hit of this term reports (a prefix term reports the token it matched)."""
        return self.written or self.token


@dataclasses.dataclass(frozen=True, slots=True)
class Phrase(_Located):
    """Two or more tokens, consecutive in one field."""

    tokens: tuple[str, ...]
    written: str = dataclasses.field(default="", compare=False, kw_only=True)

    @property
    def label(self) -> str:
        return self.written or " ".join(self.tokens)


@dataclasses.dataclass(frozen=True, slots=True)
class Entity(_Located):
    """``@Name``: any of its aliases, each alias a term or phrase (its tokens).

    ``written`` holds the aliases as the entities file spells them, one per alias, for hits:
    "Зеленський" reads better in an alert than its normalized form "зеленскии".
    """

    name: str
    aliases: tuple[tuple[str, ...], ...]
    written: tuple[str, ...] = dataclasses.field(default=(), compare=False, kw_only=True)

    def label(self, alias: int) -> str:
        return self.written[alias] if self.written else " ".join(self.aliases[alias])


@dataclasses.dataclass(frozen=True, slots=True)
class Regex(_Located):
    """``/pattern/``: an RE2 pattern over a field's normalized text (watcher.rules.patterns)."""

    pattern: str


@dataclasses.dataclass(frozen=True, slots=True)
class Near(_Located):
    """Both sides occur in one field with at most ``distance`` token positions between."""

    left: Node
    right: Node
    distance: int


@dataclasses.dataclass(frozen=True, slots=True)
class And(_Located):
    children: tuple[Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Or(_Located):
    children: tuple[Node, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class Not(_Located):
    child: Node


@dataclasses.dataclass(frozen=True, slots=True)
class Field(_Located):
    """``field:child``: the child looks only at that field of the entry."""

    field: str
    child: Node


Node: TypeAlias = Term | Phrase | Entity | Regex | Near | And | Or | Not | Field


def parse_query(text: str, entities: Mapping[str, Sequence[str]]) -> Node:
    """Parse one query; raises RuleSyntaxError (and nothing else) for any text it rejects."""
    return _Parser(text, entities).parse()


# --- lexer -------------------------------------------------------------------------------


class _Kind(enum.Enum):
    WORD = "word"
    PHRASE = "phrase"
    ENTITY = "entity"
    REGEX = "regex"
    FIELD = "field"
    OPEN = "("
    CLOSE = ")"
    AND = "AND"
    OR = "OR"
    NOT = "NOT"
    NEAR = "NEAR"
    MINUS = "-"
    END = "end"


_OPERATORS = {"AND": _Kind.AND, "OR": _Kind.OR, "NOT": _Kind.NOT}
_PRIMARY_STARTS = frozenset({_Kind.WORD, _Kind.PHRASE, _Kind.ENTITY, _Kind.REGEX, _Kind.OPEN})
_OPERAND_STARTS = _PRIMARY_STARTS | {_Kind.FIELD, _Kind.NOT, _Kind.MINUS}
_ENTITY_NAME = re.compile(r"[A-Za-z0-9_]+")
_FIELD_PREFIX = re.compile(r"[A-Za-z]+:")
_NEAR = re.compile(r"NEAR/([0-9]+)")
_NEAR_MAX_DIGITS = 9  # int() of a huge digit string would raise ValueError


@dataclasses.dataclass(frozen=True, slots=True)
class _Lexeme:
    kind: _Kind
    text: str  # exactly as written in the query
    offset: int
    distance: int = 0  # NEAR/n only

    @property
    def end(self) -> int:
        return self.offset + len(self.text)

    def describe(self) -> str:
        return "end of query" if self.kind is _Kind.END else f'"{self.text}"'


def _ends_word(char: str) -> bool:
    return char.isspace() or char in '()"'


class _Lexer:
    """Cuts the query into lexemes, one at a time, so errors come out left to right."""

    def __init__(self, query: str) -> None:
        self._query = query
        self._pos = 0
        self._after_minus = False  # "-AND" excludes the word "and"; it is no operator

    def _error(self, message: str, offset: int, length: int = 1) -> RuleSyntaxError:
        return RuleSyntaxError(message, self._query, offset, length)

    def next(self) -> _Lexeme:
        query, pos = self._query, self._pos
        while pos < len(query) and query[pos].isspace():
            pos += 1
        after_minus, self._after_minus = self._after_minus, False
        if pos == len(query):
            self._pos = pos
            # Right after the last word, not after trailing newlines (YAML block scalars).
            return _Lexeme(_Kind.END, "", len(query.rstrip()))
        char = query[pos]
        if char in "()":
            lexeme = _Lexeme(_Kind(char), char, pos)
        elif char == '"':
            lexeme = self._phrase(pos)
        elif char == "@":
            lexeme = self._entity(pos)
        elif char == "/":
            lexeme = self._regex(pos)
        elif char == "-":
            lexeme = _Lexeme(_Kind.MINUS, char, pos)
            self._after_minus = True
        else:
            lexeme = self._word(pos, operators=not after_minus)
        self._pos = lexeme.end
        return lexeme

    def _phrase(self, start: int) -> _Lexeme:
        close = self._query.find('"', start + 1)
        if close == -1:
            raise self._error("""missing closing '"' for the phrase that starts here""", start)
        return _Lexeme(_Kind.PHRASE, self._query[start : close + 1], start)

    def _entity(self, start: int) -> _Lexeme:
        name = _ENTITY_NAME.match(self._query, start + 1)
        if name is None:
            raise self._error("expected an entity name after @, as in @Putin", start)
        end = name.end()
        if end < len(self._query) and not _ends_word(self._query[end]):
            raise self._error(
                f'unexpected "{self._query[end]}" after @{name.group()}: '
                "entity names are letters, digits and _ only",
                end,
            )
        return _Lexeme(_Kind.ENTITY, self._query[start:end], start)

    def _regex(self, start: int) -> _Lexeme:
        query = self._query
        pos = start + 1
        while pos < len(query) and query[pos] != "/":
            pos += 2 if query[pos] == "\\" else 1  # "\/" is a slash inside the pattern
        if pos >= len(query):
            raise self._error(
                "missing closing / for the regular expression that starts here", start
            )
        end = pos + 1
        if end < len(query) and not _ends_word(query[end]):
            flags = re.match(r"[A-Za-z]+", query[end:])
            if flags is not None:
                raise self._error(
                    "a regular expression takes no flags: the text it runs over is lower case "
                    "without accents, so write the pattern that way",
                    end,
                    flags.end(),
                )
            raise self._error(
                f'unexpected "{query[end]}" after the regular expression; end it with a space',
                end,
            )
        return _Lexeme(_Kind.REGEX, query[start:end], start)

    def _word_at(self, start: int) -> str:
        end = start
        while end < len(self._query) and not _ends_word(self._query[end]):
            end += 1
        return self._query[start:end]

    def _word(self, start: int, *, operators: bool) -> _Lexeme:
        word = self._word_at(start)
        field = _FIELD_PREFIX.match(word)
        if field is not None:
            return self._field(field.group(), start)
        if operators and word in _OPERATORS:
            return _Lexeme(_OPERATORS[word], word, start)
        if operators and (word == "NEAR" or word.startswith("NEAR/")):
            return self._near(word, start)
        return _Lexeme(_Kind.WORD, word, start)

    def _field(self, prefix: str, start: int) -> _Lexeme:
        name = prefix[:-1]
        if name not in FIELDS:
            close = difflib.get_close_matches(name.lower(), FIELDS, n=1)
            guess = f" (did you mean {close[0]}:?)" if close else ""
            raise self._error(
                f'unknown field "{name}"{guess}; fields are {", ".join(FIELDS)}. '
                "To search for text with a colon, put it in quotes",
                start,
                len(prefix),
            )
        return _Lexeme(_Kind.FIELD, prefix, start)

    def _near(self, word: str, start: int) -> _Lexeme:
        near = _NEAR.fullmatch(word)
        if near is None:
            raise self._error("NEAR needs a distance: NEAR/5", start, len(word))
        if len(near.group(1)) > _NEAR_MAX_DIGITS:
            raise self._error("the NEAR distance is too large", start, len(word))
        distance = int(near.group(1))
        if distance < 1:
            raise self._error("the NEAR distance must be at least 1: NEAR/1", start, len(word))
        return _Lexeme(_Kind.NEAR, word, start, distance)


# --- parser ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, query: str, entities: Mapping[str, Sequence[str]]) -> None:
        self._query = query
        self._entities = entities
        self._lexer = _Lexer(query)
        self._previous: _Lexeme | None = None
        self._lookahead = self._lexer.next()
        self._depth = 0
        self._field: _Lexeme | None = None  # the field whose operand is being parsed

    # plumbing

    def _peek(self) -> _Lexeme:
        return self._lookahead

    def _advance(self) -> _Lexeme:
        current = self._lookahead
        self._previous = current
        self._lookahead = self._lexer.next()
        return current

    def _error(self, message: str, offset: int, length: int = 1) -> RuleSyntaxError:
        return RuleSyntaxError(message, self._query, offset, length)

    def _error_at(self, message: str, where: _Lexeme | _Located) -> RuleSyntaxError:
        if isinstance(where, _Lexeme):
            return self._error(message, where.offset, len(where.text))
        return self._error(message, where.offset, where.length)

    def _expected_operand(self) -> RuleSyntaxError:
        previous = self._previous
        if previous is None:
            context = "at the start of the query"
        elif previous.kind in (_Kind.OPEN, _Kind.MINUS):
            context = f'after "{previous.text}"'
        else:
            context = f"after {previous.text}"
        found = self._peek()
        return self._error_at(
            f'expected a term, phrase, @Entity or "(" {context}, found {found.describe()}', found
        )

    def _require_operand(self) -> None:
        if self._peek().kind not in _OPERAND_STARTS:
            raise self._expected_operand()

    def _enter(self, lexeme: _Lexeme) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._error_at(
                f"the query nests too deeply (more than {MAX_DEPTH} levels)", lexeme
            )

    # grammar

    def parse(self) -> Node:
        if not self._query.strip():
            raise self._error('the query is empty: write a term, a "phrase" or an @Entity', 0)
        self._require_operand()
        node = self._or()
        rest = self._peek()
        if rest.kind is _Kind.CLOSE:
            raise self._error_at('unbalanced ")": there is no "(" for it to close', rest)
        if rest.kind is not _Kind.END:
            raise self._error_at(f"unexpected {rest.describe()}", rest)
        return node

    def _or(self) -> Node:
        children = [self._and()]
        while self._peek().kind is _Kind.OR:
            self._advance()
            self._require_operand()
            children.append(self._and())
        return _combine(Or, children)

    def _and(self) -> Node:
        children = [self._near()]
        while True:
            if self._peek().kind is _Kind.AND:
                self._advance()
                self._require_operand()
            elif self._peek().kind not in _OPERAND_STARTS:
                break
            children.append(self._near())
        return _combine(And, children)

    def _near(self) -> Node:
        left = self._unary()
        if self._peek().kind is not _Kind.NEAR:
            return left
        near = self._advance()
        self._require_operand()
        right = self._unary()
        for side in (left, right):
            self._check_near_side(side)
        if self._peek().kind is _Kind.NEAR:
            raise self._error_at(
                "NEAR cannot be chained; combine pairs with AND: a NEAR/5 b AND b NEAR/5 c",
                self._peek(),
            )
        return Near(left, right, near.distance, offset=left.offset, length=right.end - left.offset)

    def _check_near_side(self, side: Node) -> None:
        match side:
            case Term() | Phrase() | Entity():
                return
            case Regex():
                raise self._error_at(
                    "a regular expression cannot be a side of NEAR; "
                    "combine it with AND: /pattern/ AND (a NEAR/5 b)",
                    side,
                )
            case Field(child=child):
                self._check_near_side(child)
            case Or(children=children):
                for child in children:
                    self._check_near_side(child)
            case Not():
                raise self._error_at(
                    "a side of NEAR cannot be negated; to exclude the pair write NOT (a NEAR/5 b)",
                    side,
                )
            case And():
                raise self._error_at(
                    "a side of NEAR is a term, phrase, @Entity or (… OR …) group, not an AND",
                    side,
                )
            case Near():
                raise self._error_at(
                    "NEAR cannot be nested; combine pairs with AND: a NEAR/5 b AND b NEAR/5 c",
                    side,
                )

    def _unary(self) -> Node:
        operator = self._peek()
        if operator.kind not in (_Kind.NOT, _Kind.MINUS):
            return self._primary()
        self._enter(operator)
        self._advance()
        if operator.kind is _Kind.MINUS and (
            self._peek().offset != operator.end or self._peek().kind not in _OPERAND_STARTS
        ):
            raise self._error_at(
                '"-" excludes what touches it: write -word, -"a phrase" or -(a OR b)', operator
            )
        self._require_operand()
        child = self._unary()
        self._depth -= 1
        return Not(child, offset=operator.offset, length=child.end - operator.offset)

    def _primary(self) -> Node:
        if self._peek().kind not in _PRIMARY_STARTS | {_Kind.FIELD}:
            raise self._expected_operand()
        lexeme = self._advance()
        match lexeme.kind:
            case _Kind.WORD:
                return self._word(lexeme)
            case _Kind.PHRASE:
                return self._phrase(lexeme)
            case _Kind.ENTITY:
                return self._entity(lexeme)
            case _Kind.REGEX:
                return self._regex(lexeme)
            case _Kind.FIELD:
                return self._fielded(lexeme)
            case _:
                return self._group(lexeme)

    def _group(self, opening: _Lexeme) -> Node:
        self._enter(opening)
        self._require_operand()
        inner = self._or()
        if self._peek().kind is not _Kind.CLOSE:
            raise self._error_at('missing ")" to close this "("', opening)
        closing = self._advance()
        self._depth -= 1
        return dataclasses.replace(
            inner, offset=opening.offset, length=closing.end - opening.offset
        )

    def _fielded(self, prefix: _Lexeme) -> Node:
        if self._field is not None:
            raise self._error_at(
                f"{prefix.text} cannot be used inside {self._field.text}(…): "
                "a term looks at one field",
                prefix,
            )
        following = self._peek()
        if following.offset != prefix.end or following.kind not in _PRIMARY_STARTS:
            hint = (
                f" (to exclude, write -{prefix.text}word)" if following.kind is _Kind.MINUS else ""
            )
            found = "a space" if following.offset != prefix.end else following.describe()
            raise self._error(
                f'expected a term, phrase, @Entity or "(" right after {prefix.text}, '
                f"found {found}{hint}",
                prefix.end,
            )
        self._enter(prefix)
        self._field = prefix
        child = self._primary()
        self._field = None
        self._depth -= 1
        return Field(
            prefix.text[:-1], child, offset=prefix.offset, length=child.end - prefix.offset
        )

    def _word(self, word: _Lexeme) -> Node:
        text = word.text
        star = text.find("*")
        if star == -1:
            tokens = tokenize(text)
            if not tokens:
                raise self._error_at(f'"{text}" has no letters or digits to match', word)
            return _tokens_node(tokens, word, text)
        if star != len(text) - 1:
            raise self._error('"*" may only end a word, as in sanction*', word.offset + star)
        tokens = tokenize(text[:-1])
        if not tokens:
            raise self._error_at('"*" needs a word before it, as in sanction*', word)
        if len(tokens) > 1:
            raise self._error_at(
                f'"*" works on a single word, but "{text}" is several: {" ".join(tokens)}', word
            )
        return Term(tokens[0], prefix=True, offset=word.offset, length=len(text))

    def _phrase(self, phrase: _Lexeme) -> Node:
        inner = phrase.text[1:-1]
        star = inner.find("*")
        if star != -1:
            raise self._error(
                '"*" does not work inside quotes; write sanction* outside them',
                phrase.offset + 1 + star,
            )
        tokens = tokenize(inner)
        if not tokens:
            raise self._error_at("empty phrase: put words between the quotes", phrase)
        return _tokens_node(tokens, phrase, " ".join(inner.split()))

    def _entity(self, reference: _Lexeme) -> Node:
        name = reference.text[1:]
        if name not in self._entities:
            raise self._error_at(f"unknown entity @{name}{self._entity_hint(name)}", reference)
        aliases = self._entities[name]
        if isinstance(aliases, str):
            aliases = (aliases,)
        written: dict[tuple[str, ...], str] = {}  # the first spelling of each normalized alias
        for alias in aliases:
            tokens = tuple(tokenize(alias))
            if tokens:
                written.setdefault(tokens, " ".join(alias.split()))
        if not written:
            raise self._error_at(f"entity @{name} has no alias with letters or digits", reference)
        return Entity(
            name,
            tuple(written),
            written=tuple(written.values()),
            offset=reference.offset,
            length=len(reference.text),
        )

    def _regex(self, regex: _Lexeme) -> Regex:
        pattern = regex.text[1:-1]
        if not pattern:
            raise self._error_at(
                "empty regular expression: put a pattern between the slashes", regex
            )
        problem = pattern_error(pattern)
        if problem is not None:
            raise self._error_at(f"invalid regular expression: {problem}", regex)
        return Regex(pattern, offset=regex.offset, length=len(regex.text))

    def _entity_hint(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._entities), n=3)
        if close:
            return "; did you mean " + " or ".join(f"@{candidate}" for candidate in close) + "?"
        if not self._entities:
            return "; no entities are defined (define them under entities: in a rules file)"
        return "; define it under entities: in a rules file"


def _tokens_node(tokens: Sequence[str], where: _Lexeme, written: str) -> Term | Phrase:
    if len(tokens) == 1:
        return Term(tokens[0], written=written, offset=where.offset, length=len(where.text))
    return Phrase(tuple(tokens), written=written, offset=where.offset, length=len(where.text))


def _combine(kind: type[And] | type[Or], children: Sequence[Node]) -> Node:
    if len(children) == 1:
        return children[0]
    start, end = children[0].offset, children[-1].end
    return kind(tuple(children), offset=start, length=end - start)
