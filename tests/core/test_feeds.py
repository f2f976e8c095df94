"""Feed assembly: column filtering, targeting, order, and opaque cursor pagination."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from fulcrum_core.assembly.feeds import decode_cursor, encode_cursor, merge_feed, page_feed
from fulcrum_core.errors import BadRequest
from fulcrum_sdk.models import Targeting


def _feed(kit: Any) -> dict[str, list[Any]]:
    """37 items over three plugins, with ties in priority and publication time."""
    t = kit.now
    return {
        "alpha": [
            kit.item("wealth", f"a{i}", priority=100 + (i % 3) * 50, published=t - timedelta(hours=i % 5))
            for i in range(15)
        ],
        "beta": [
            kit.item("wealth", f"b{i}", priority=100, published=t - timedelta(hours=i % 4)) for i in range(12)
        ],
        "gamma": [kit.item("wealth", f"g{i}", priority=150, published=t) for i in range(10)],
    }


def test_other_columns_and_mistargeted_items_are_dropped(kit: Any) -> None:
    """Only the requested column's items that target the customer remain."""
    items = {
        "p": [
            kit.item("wealth", "w"),
            kit.item("life", "l"),
            kit.item("wealth", "rich", targeting=Targeting(segments=frozenset({"affluent"}))),
            kit.item("wealth", "mass", targeting=Targeting(segments=frozenset({"mass"}))),
        ]
    }
    merged = merge_feed(items, column="wealth", customer=kit.customer("young_professional"))
    assert sorted(card.key for _, card in merged) == ["mass", "w"]


def test_order_is_priority_then_recency_then_plugin_then_key(kit: Any) -> None:
    """Cards are ordered by priority desc, published_at desc, plugin id, key."""
    t = kit.now
    items = {
        "b": [
            kit.item("wealth", "old-high", priority=900, published=t - timedelta(days=3)),
            kit.item("wealth", "new", published=t),
        ],
        "a": [
            kit.item("wealth", "new", published=t),
            kit.item("wealth", "older", published=t - timedelta(hours=1)),
        ],
    }
    order = [(c.plugin, c.key) for _, c in merge_feed(items, column="wealth", customer=kit.customer())]
    assert order == [("b", "old-high"), ("a", "new"), ("b", "new"), ("a", "older")]


@pytest.mark.parametrize("limit", [1, 4, 7, 20, 50])
def test_walking_all_pages_has_no_duplicates_or_gaps(kit: Any, limit: int) -> None:
    """Following next_cursor from the first page visits every card exactly once, in order."""
    merged = merge_feed(_feed(kit), column="wealth", customer=kit.customer())
    seen: list[tuple[str, str]] = []
    cursor: str | None = None
    for _ in range(100):
        after = decode_cursor("wealth", cursor) if cursor else None
        page = page_feed(merged, column="wealth", after=after, limit=limit)
        assert len(page.items) <= limit
        seen += [(c.plugin, c.key) for c in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [(c.plugin, c.key) for _, c in merged]
    assert len(seen) == 37 == len(set(seen))


def test_cursor_survives_new_items_before_it(kit: Any) -> None:
    """An item published above the cursor after page one does not shift page two."""
    feed = _feed(kit)
    first = page_feed(
        merge_feed(feed, column="wealth", customer=kit.customer()), column="wealth", after=None, limit=5
    )
    feed["alpha"].append(kit.item("wealth", "breaking", priority=1000))
    merged = merge_feed(feed, column="wealth", customer=kit.customer())
    assert first.next_cursor is not None
    second = page_feed(merged, column="wealth", after=decode_cursor("wealth", first.next_cursor), limit=5)
    old_order = [c.key for _, c in merge_feed(_feed(kit), column="wealth", customer=kit.customer())]
    assert [c.key for c in second.items] == old_order[5:10]


def test_last_page_has_no_cursor(kit: Any) -> None:
    """A page that reaches the end returns next_cursor None, also for an empty feed."""
    merged = merge_feed({"p": [kit.item("wealth", "only")]}, column="wealth", customer=kit.customer())
    assert page_feed(merged, column="wealth", after=None, limit=1).next_cursor is None
    assert page_feed([], column="wealth", after=None, limit=20).next_cursor is None


@pytest.mark.parametrize(
    "cursor",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(b'{"json": true}').decode(),
        base64.urlsafe_b64encode(b'["wealth",[1,2,"p"]]').decode(),
        base64.urlsafe_b64encode(b'["wealth",["x",2,"p","k"]]').decode(),
        "",
        "%%%",
    ],
)
def test_bad_cursor_is_a_400_naming_cursor(cursor: str) -> None:
    """A cursor we did not issue is refused with field 'cursor'."""
    with pytest.raises(BadRequest) as info:
        decode_cursor("wealth", cursor)
    assert info.value.field == "cursor"


def test_cursor_of_another_column_is_refused() -> None:
    """A valid cursor from one column cannot be replayed on another."""
    cursor = encode_cursor("life", (-100, -5, "p", "k"))
    assert decode_cursor("life", cursor) == (-100, -5, "p", "k")
    with pytest.raises(BadRequest) as info:
        decode_cursor("wealth", cursor)
    assert info.value.field == "cursor"


@pytest.mark.parametrize("limit", [0, -1, 51])
def test_bad_limit_names_the_field(limit: int) -> None:
    """limit outside 1..50 is a 400 naming limit."""
    with pytest.raises(BadRequest) as info:
        page_feed([], column="wealth", after=None, limit=limit)
    assert info.value.field == "limit"
