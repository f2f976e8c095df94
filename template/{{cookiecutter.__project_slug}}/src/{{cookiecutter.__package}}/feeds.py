"""Feeds: a getting-started guide in the life (生活) column; nothing for the other columns."""

from __future__ import annotations

from datetime import UTC, datetime

from fulcrum_sdk import FeedItem, PluginContext, hookimpl
from fulcrum_sdk import LocalizedText as T

from {{ cookiecutter.__package }}._about import GUIDE, NAME

__all__ = ["FEED_COLUMN", "feed_items"]

FEED_COLUMN = "life"


@hookimpl
async def feed_items(ctx: PluginContext, column: str) -> list[FeedItem]:
    """One article for the life column, an empty list for any other column."""
    if column != FEED_COLUMN:
        return []
    return [
        FeedItem(
            key="guide",
            column=FEED_COLUMN,
            kind="article",
            title=T(zh_CN=f"三分钟了解{NAME.zh_CN}", en=f"{NAME.get('en')} in three minutes"),
            summary=T(zh_CN="功能介绍与常见问题", en="What it does, and frequent questions"),
            action=GUIDE,
            published_at=datetime(2025, 1, 1, tzinfo=UTC),
        )
    ]
