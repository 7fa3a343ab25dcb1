"""Jinja2 environments for alert templates: sandboxed, one per output format.

Templates come from the operator's config, never from feeds: entry fields reach a template
only as variables. Each format escapes those variables on output: HTML with Jinja's
autoescape, Markdown with `escape_markdown` (the Markdown twin of autoescape), plain text
not at all. Values already made safe (`Markup`, `MarkdownSafe`) pass through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from watcher.notify import BodyFormat
from watcher.templates.sanitize import escape_markdown, highlight_html, highlight_text

MAX_TEMPLATE_CHARS = 16_384
MAX_OUTPUT_CHARS = 100_000
_TEMPLATE_FILENAME = "<template>"  # Jinja's name for code compiled from a string


class MarkdownSafe(str):
    """Markdown that is already escaped; the Markdown environment prints it unchanged."""

    __slots__ = ()


class TemplateError(ValueError):
    """A template cannot be compiled or rendered; `lineno` is 1-based within its source."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        self.message = message
        self.lineno = lineno
        super().__init__(f"line {lineno}: {message}" if lineno else message)


def _finalize_text(value: Any) -> Any:
    return "" if value is None else value


def _finalize_markdown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, MarkdownSafe):
        return value
    return MarkdownSafe(escape_markdown(str(value)))


def _highlight_html(value: Any, terms: Sequence[str] = ()) -> Markup:
    if isinstance(value, Markup):
        return highlight_html(str(value), terms)
    return highlight_text("" if value is None else str(value), terms)


def _highlight_nothing(value: Any, terms: Sequence[str] = ()) -> Any:
    return value


@functools.cache
def environment(body_format: BodyFormat) -> ImmutableSandboxedEnvironment:
    finalize: Callable[[Any], Any] = (
        _finalize_markdown if body_format is BodyFormat.MARKDOWN else _finalize_text
    )
    env = ImmutableSandboxedEnvironment(
        autoescape=body_format is BodyFormat.HTML,
        finalize=finalize,
        undefined=StrictUndefined,  # a misspelt variable fails when the config is checked
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["highlight"] = (
        _highlight_html if body_format is BodyFormat.HTML else _highlight_nothing
    )
    return env


@functools.lru_cache(maxsize=256)
def compile_source(source: str, body_format: BodyFormat) -> Template:
    """The template for `source` in `body_format`'s environment. Raises TemplateError."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"template is {len(source)} characters long; the limit is {MAX_TEMPLATE_CHARS}"
        )
    try:
        return environment(body_format).from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", exc.lineno) from None


def render_capped(
    template: Template, context: Mapping[str, Any], limit: int = MAX_OUTPUT_CHARS
) -> str:
    """Render, stopping once the output passes `limit` characters. Raises TemplateError."""
    parts: list[str] = []
    size = 0
    try:
        for chunk in template.generate(context):
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                break
    except Exception as exc:  # undefined names, sandbox refusals, filter errors
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise TemplateError(
            f"template failed: {message}", _template_line(exc.__traceback__)
        ) from None
    return "".join(parts)[:limit]


def _template_line(trace: TracebackType | None) -> int | None:
    """The template line of the innermost template frame: Jinja rewrites tracebacks."""
    line = None
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == _TEMPLATE_FILENAME:
            line = trace.tb_lineno
        trace = trace.tb_next
    return line
