"""Alert templates: the defaults shipped as package data, the sandbox, and sanitizing.

The default templates are ``title.j2`` (plain text, every target) and ``body.<format>.j2``
for the three body formats (text, html, markdown). An operator's override gets the same
variables; see ``watcher.render`` for them.
"""

from __future__ import annotations

import functools
from importlib import resources

from watcher.notify import BodyFormat


@functools.cache
def default_source(part: str, body_format: BodyFormat = BodyFormat.TEXT) -> str:
    """The shipped template for the "title" (plain text) or the "body" in `body_format`."""
    name = "title.j2" if part == "title" else f"body.{body_format.value}.j2"
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
