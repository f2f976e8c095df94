"""Content feeds: merge one column's items from every plugin, order them, and page with a cursor.

Order: priority (highest first), then newest ``published_at``, then plugin id, then key — a total
order, so keyset pagination neither repeats nor skips an item that stays in the feed. The cursor is
opaque to clients: base64url of the column and the last item's sort key; a cursor that does not decode,
or belongs to another column, is a ``BadRequest`` naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec
from fulcrum_sdk.context import Customer
from fulcrum_sdk.models import Action, FeedItem, LocalizedText

from fulcrum_core.assembly.common import SeenAs, as_utc, targets
from fulcrum_core.errors import BadRequest
from fulcrum_core.parameter_problems import echoed

__all__ = [
    "MAX_LIMIT",
    "FeedCard",
    "FeedPage",
    "SortKey",
    "decode_cursor",
    "encode_cursor",
    "merge_feed",
    "page_feed",
]

MAX_LIMIT = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

SortKey = tuple[int, int, str, str]
"""(-priority, -published microseconds since the epoch, plugin id, key): ascending is feed order."""


class FeedCard(msgspec.Struct, frozen=True, kw_only=True):
    """One card of a content feed, with the plugin that contributed it."""

    plugin: str
    key: str
    kind: Literal["article", "video", "live", "product", "offer"]
    title: LocalizedText
    summary: LocalizedText | None = None
    image: str | None = None
    action: Action
    published_at: datetime


class FeedPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a column; ``next_cursor`` is ``None`` on the last page."""

    items: list[FeedCard]
    next_cursor: str | None


class _Cursor(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    column: str
    key: SortKey


def merge_feed(
    items: Mapping[str, Sequence[FeedItem]], *, column: str, customer: Customer, seen_as: SeenAs | None = None
) -> list[tuple[SortKey, FeedCard]]:
    """The column's items from every plugin, targeted at the customer (as each plugin sees them:
    ``seen_as``, default ``customer``), in feed order with sort keys."""
    merged: dict[tuple[str, str], tuple[SortKey, FeedCard]] = {}
    for plugin, plugin_items in items.items():
        seen = customer if seen_as is None else seen_as(plugin)
        for item in plugin_items:
            if item.column != column or not targets(item.targeting, seen) or (plugin, item.key) in merged:
                continue
            published = as_utc(item.published_at)
            key: SortKey = (-item.priority, -((published - _EPOCH) // _MICRO), plugin, item.key)
            merged[(plugin, item.key)] = (key, FeedCard(
                plugin=plugin, key=item.key, kind=item.kind, title=item.title, summary=item.summary,
                image=item.image, action=item.action, published_at=published,
            ))
    return sorted(merged.values(), key=lambda entry: entry[0])


def encode_cursor(column: str, key: SortKey) -> str:
    """The opaque cursor pointing just after ``key`` in ``column``."""
    raw = msgspec.json.encode(_Cursor(column=column, key=key))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(column: str, cursor: str) -> SortKey:
    """The sort key inside ``cursor``; ``BadRequest`` naming ``cursor`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.json.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadRequest("cursor is not one this feed returned", field="cursor",
                         code="invalid-cursor") from None
    if decoded.column != column:
        raise BadRequest(f"cursor belongs to column {echoed(decoded.column)}, not {column!r}", field="cursor",
                         code="invalid-cursor")
    return decoded.key


def page_feed(
    entries: Sequence[tuple[SortKey, FeedCard]], *, column: str, after: SortKey | None, limit: int
) -> FeedPage:
    """Up to ``limit`` cards strictly after ``after`` (from the start when ``None``)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}", field="limit", code="invalid-limit")
    start = 0 if after is None else bisect.bisect_right(entries, after, key=lambda entry: entry[0])
    window = entries[start : start + limit]
    more = start + limit < len(entries)
    next_cursor = encode_cursor(column, window[-1][0]) if more and window else None
    return FeedPage(items=[card for _, card in window], next_cursor=next_cursor)
