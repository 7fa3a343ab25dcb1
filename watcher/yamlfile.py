"""YAML with positions: the only module that imports PyYAML.

Config and rules files are read into `YamlNode`s that remember file, line and column, so
every validation error can say exactly where it is.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from watcher.errors import ConfigError, Location

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True)
class YamlNode:
    node: yaml.Node
    path: Path

    @property
    def location(self) -> Location:
        mark = self.node.start_mark
        return Location(self.path, mark.line + 1, mark.column + 1)

    def error(self, message: str, hint: str = "") -> ConfigError:
        return ConfigError(message, self.location, hint)

    @property
    def kind(self) -> str:
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        return "a value"

    def is_null(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode) and self.node.tag.endswith(":null")

    def is_scalar(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode) and not self.is_null()

    def is_list(self) -> bool:
        return isinstance(self.node, yaml.SequenceNode)

    def items(self, what: str, allowed: frozenset[str] | None = None) -> dict[str, YamlNode]:
        """The mapping's values by key; unknown or repeated keys are errors."""
        if self.is_null():
            return {}
        if not isinstance(self.node, yaml.MappingNode):
            raise self.error(f"{what} must be a mapping (key: value), found {self.kind}")
        result: dict[str, YamlNode] = {}
        for key_node, value_node in self.node.value:
            key = YamlNode(key_node, self.path)
            if not key.is_scalar():
                raise key.error(f"keys of {what} must be plain names")
            name = str(key_node.value)
            if name in result:
                raise key.error(f"{name!r} appears twice in {what}")
            if allowed is not None and name not in allowed:
                close = difflib.get_close_matches(name, sorted(allowed), n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else "allowed: " + ", ".join(sorted(allowed))
                )
                raise key.error(f"unknown key {name!r} in {what}", hint)
            result[name] = YamlNode(value_node, self.path)
        return result

    def key_location(self, key: str) -> Location:
        if isinstance(self.node, yaml.MappingNode):
            for key_node, _ in self.node.value:
                if key_node.value == key:
                    return YamlNode(key_node, self.path).location
        return self.location

    def elements(self, what: str) -> list[YamlNode]:
        if self.is_null():
            return []
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.error(f"{what} must be a list, found {self.kind}")
        return [YamlNode(child, self.path) for child in self.node.value]

    def string_or_list(self, what: str) -> list[YamlNode]:
        """A single value or a list of values (`notify: team` or `notify: [a, b]`)."""
        if isinstance(self.node, yaml.SequenceNode):
            return self.elements(what)
        return [self]

    def text(self, what: str, *, expand_env: bool = False) -> str:
        if not self.is_scalar():
            raise self.error(f"{what} must be a text value, found {self.kind}")
        value = str(self.node.value)
        return self._expand(value, what) if expand_env else value

    def boolean(self, what: str) -> bool:
        if isinstance(self.node, yaml.ScalarNode) and self.node.tag.endswith(":bool"):
            return str(self.node.value).lower() in {"true", "yes", "on"}
        raise self.error(f"{what} must be true or false")

    def integer(self, what: str, minimum: int = 0) -> int:
        if isinstance(self.node, yaml.ScalarNode) and self.node.tag.endswith(":int"):
            value = int(str(self.node.value))
            if value >= minimum:
                return value
        raise self.error(f"{what} must be a whole number of at least {minimum}")

    def scalar_value(self) -> str | int | float:
        """The scalar as YAML typed it, for values that accept a number or a text."""
        text = self.text("value")
        if self.node.tag.endswith(":int"):
            return int(text)
        if self.node.tag.endswith(":float"):
            return float(text)
        return text

    def offset_location(self, offset: int) -> Location:
        """Where character `offset` of this scalar's value sits in the file (best effort
        for escaped or folded scalars, exact for plain and simply quoted ones)."""
        node = self.node
        assert isinstance(node, yaml.ScalarNode)
        value = str(node.value)
        start = node.start_mark
        quoted = node.style in ("'", '"')
        if "\n" not in value and start.line == node.end_mark.line:
            return Location(self.path, start.line + 1, start.column + 1 + int(quoted) + offset)
        before = value[:offset]
        line_index = before.count("\n")
        column = offset - (before.rfind("\n") + 1)
        if node.style in ("|", ">"):
            line = start.line + 1 + line_index
            indent = _indent_of(self.path, line)
            return Location(self.path, line + 1, indent + column + 1)
        return Location(self.path, start.line + 1 + line_index, start.column + 1 + column)

    def _expand(self, value: str, what: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name)
            if found is not None and found != "":
                return found
            if default is not None:
                return default
            raise self.error(
                f"environment variable {name} is not set (used in {what})",
                f"export {name}=... or put it in the service's environment file",
            )

        return _ENV_REF.sub(replace, value)


def _indent_of(path: Path, line_index: int) -> int:
    try:
        line = path.read_text(encoding="utf-8").splitlines()[line_index]
    except (OSError, IndexError):
        return 0
    return len(line) - len(line.lstrip(" "))


def load_yaml(path: Path) -> YamlNode:
    """Read one YAML document; syntax errors become ConfigError with file:line:col."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = Location(path, mark.line + 1, mark.column + 1) if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"invalid YAML: {problem}", location) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in {path}: {exc}") from None
    if node is None:
        node = yaml.ScalarNode("tag:yaml.org,2002:null", "")
        node.start_mark = yaml.Mark(str(path), 0, 0, 0, "", 0)
    return YamlNode(node, path)


def walk_files(folder: Path) -> Iterator[Path]:
    """The *.yaml / *.yml files of a folder, in name order."""
    for candidate in sorted(folder.iterdir()):
        if candidate.suffix in {".yaml", ".yml"} and candidate.is_file():
            yield candidate
