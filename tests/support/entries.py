"""Entries as the rule tests write them: only the text fields a test cares about."""

from __future__ import annotations

from watcher.models import Entry


def entry(
    title: str = "",
    summary: str = "",
    content: str = "",
    *,
    author: str = "",
    categories: tuple[str, ...] = (),
    link: str | None = None,
    feed: str = "Feed",
    key: str = "key",
) -> Entry:
    return Entry(
        feed=feed,
        key=key,
        link_key=link,
        content_hash="hash",
        title=title,
        link=link,
        summary=summary,
        content=content,
        author=author,
        categories=categories,
    )
