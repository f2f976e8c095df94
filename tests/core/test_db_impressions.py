"""``ImpressionStore``: counting what a customer was shown in a slot, for popup frequency caps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from fulcrum_core.data.db import Database
from fulcrum_core.data.impressions import ImpressionStore

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
POPUP = "home.popup/v1"


def test_counts_only_this_customer_slot_and_window(db: Database) -> None:
    """count_since counts the customer's impressions in that slot at or after ``since`` only."""
    store = ImpressionStore(db)
    store.record("c-1", POPUP, "wealth-checkup", "score-drop", NOW - timedelta(hours=25))
    store.record("c-1", POPUP, "wealth-checkup", "score-drop", NOW - timedelta(hours=1))
    store.record("c-1", "home.banner/v1", "pension", "cap", NOW)
    store.record("c-2", POPUP, "pension", "cap", NOW)
    since = NOW - timedelta(hours=24)
    assert store.count_since("c-1", POPUP, since) == 1
    assert store.count_since("c-1", POPUP, NOW - timedelta(hours=1)) == 1
    assert store.count_since("c-1", POPUP, NOW - timedelta(days=2)) == 2
    assert store.count_since("c-3", POPUP, since) == 0


def test_window_boundary_uses_instants_not_wall_clocks(db: Database) -> None:
    """An impression recorded in another time zone is compared as the same instant."""
    store = ImpressionStore(db)
    shanghai = NOW.astimezone(timezone(timedelta(hours=8)))
    store.record("c-1", POPUP, "p", "k", shanghai)
    assert store.count_since("c-1", POPUP, NOW) == 1
    assert store.count_since("c-1", POPUP, NOW + timedelta(microseconds=1)) == 0


def test_forget_removes_only_the_impressions_named(db: Database) -> None:
    """record answers each impression's id; forget removes those and no other."""
    store = ImpressionStore(db)
    kept = store.record("c-1", POPUP, "p", "k", NOW)
    given_back = store.record("c-1", POPUP, "p", "k", NOW)
    assert kept != given_back
    store.forget([given_back])
    assert store.count_since("c-1", POPUP, NOW - timedelta(hours=1)) == 1


def test_nth_latest_is_when_the_nth_most_recent_item_was_shown(db: Database) -> None:
    """nth_latest answers the n-th most recent impression of the customer's slot in the window, or None
    when fewer were shown: the cap of n holds until then plus the window."""
    store = ImpressionStore(db)
    for hours in (30, 5, 2, 1):
        store.record("c-1", POPUP, "p", "k", NOW - timedelta(hours=hours))
    store.record("c-2", POPUP, "p", "k", NOW)
    store.record("c-1", "home.banner/v1", "p", "k", NOW)
    since = NOW - timedelta(hours=24)
    assert store.nth_latest("c-1", POPUP, since, 1) == NOW - timedelta(hours=1)
    assert store.nth_latest("c-1", POPUP, since, 3) == NOW - timedelta(hours=5)
    assert store.nth_latest("c-1", POPUP, since, 4) is None
    assert store.nth_latest("c-3", POPUP, since, 1) is None
