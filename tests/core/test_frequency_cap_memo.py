"""A customer at a popup's cap is known to be so until the cap's window ends: a plugin that offers its
popup on every page (a notice owed until the customer reads it) costs one impression read per worker
and window, not one per page, and the cap still holds."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fulcrum_core.api import frequency_caps
from fulcrum_core.api.frequency_caps import _AtCap
from fulcrum_core.data.impressions import ImpressionStore
from fulcrum_sdk.testing import PERSONAS

CUSTOMER = PERSONAS["young_professional"].id
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ROOMY = 10_000
"""A home budget no busy machine's stalled event loop outlasts: a late store read leaves the popup out."""


def _popups(page: Any) -> list[str]:
    assert page.status_code == 200, page.text
    return [item["key"] for item in page.json()["slots"]["home.popup/v1"]]


def test_pages_after_the_cap_is_reached_read_no_impressions(
    make_app: Callable[..., Any], kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The popup is shown once; the next page reads the store once and learns the cap holds; the pages
    after it read nothing and still hold the popup back. A second worker on the same database reads
    once too and holds it back as well."""

    async def popup(ctx: Any) -> Any:
        return [kit.offer("home.popup", "owed-notice")]

    app = make_app(kit.plugin("popper", home_slot_offers=popup), home_budget_ms=ROOMY)
    token = app.token(CUSTOMER)
    reads: list[str] = []
    count = ImpressionStore.count_since

    def counted(self: ImpressionStore, customer_ref: str, *args: Any) -> int:
        reads.append(customer_ref)
        return count(self, customer_ref, *args)

    monkeypatch.setattr(ImpressionStore, "count_since", counted)
    assert _popups(app.get("/v1/home", token=token)) == ["owed-notice"]
    shown_reads = len(reads)  # the read before it, and the count again once recorded
    assert _popups(app.get("/v1/home", token=token)) == []
    assert len(reads) == shown_reads + 1
    for _ in range(5):
        assert _popups(app.get("/v1/home", token=token)) == []
    assert len(reads) == shown_reads + 1

    other = make_app(kit.plugin("popper", home_slot_offers=popup), home_budget_ms=ROOMY)  # the same db file
    assert _popups(other.get("/v1/home", token=other.token(CUSTOMER))) == []
    assert _popups(other.get("/v1/home", token=other.token(CUSTOMER))) == []
    assert len(reads) == shown_reads + 2


def test_the_memo_ends_with_the_window_and_keeps_a_bounded_number_of_customers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A customer is at the cap until the moment learnt, not at or after it; past the bound the entry
    learnt first is dropped, and learning a customer again makes it the newest."""
    memo = _AtCap()
    until = NOW + timedelta(hours=3)
    memo.learn("c-1", "home.popup/v1", until)
    assert memo.holds("c-1", "home.popup/v1", NOW)
    assert memo.holds("c-1", "home.popup/v1", until - timedelta(microseconds=1))
    assert not memo.holds("c-1", "home.popup/v1", until)
    assert not memo.holds("c-1", "home.banner/v1", NOW)
    assert not memo.holds("c-2", "home.popup/v1", NOW)

    monkeypatch.setattr(frequency_caps, "_AT_CAP_ENTRIES", 3)
    memo = _AtCap()
    for name in ("a", "b", "c"):
        memo.learn(name, "s", until)
    memo.learn("a", "s", until)  # a is now the newest
    memo.learn("d", "s", until)  # b, learnt first of those left, goes
    assert [memo.holds(n, "s", NOW) for n in "abcd"] == [True, False, True, True]


def test_the_memo_is_only_touched_on_the_event_loop() -> None:
    """The memo has no lock: apply_caps learns on the loop from what the read thread answered."""
    assert not any(isinstance(v, type(threading.Lock())) for v in vars(_AtCap()).values())


def test_a_count_read_in_time_counts_though_the_loop_was_held_past_the_budget(
    make_app: Callable[..., Any], kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The impression store answers at once while the event loop is held past the page's budget (a
    stall, which the stall watch reports): the popup is shown and recorded, as without the stall, not
    left out as if the store had not answered; the next page holds it back."""

    async def popup(ctx: Any) -> Any:
        return [kit.offer("home.popup", "owed-notice")]

    budget_s = 1.0  # room for a busy machine to start the read's thread within it
    app = make_app(kit.plugin("popper", home_slot_offers=popup), home_budget_ms=int(budget_s * 1000))
    token = app.token(CUSTOMER)
    count, run_sync = frequency_caps._count_shown, frequency_caps.host_threads.run_sync
    loops: list[asyncio.AbstractEventLoop] = []

    async def on_this_loop(*args: Any, **kwargs: Any) -> Any:
        loops.append(asyncio.get_running_loop())
        return await run_sync(*args, **kwargs)

    def answers_while_the_loop_is_held(*args: Any) -> Any:
        holding = threading.Event()

        def hold() -> None:
            holding.set()
            time.sleep(2 * budget_s)

        loops[-1].call_soon_threadsafe(hold)
        assert holding.wait(10)
        return count(*args)

    monkeypatch.setattr(frequency_caps.host_threads, "run_sync", on_this_loop)
    monkeypatch.setattr(frequency_caps, "_count_shown", answers_while_the_loop_is_held)
    assert _popups(app.get("/v1/home", token=token)) == ["owed-notice"]
    waited = time.monotonic() + 10
    while frequency_caps._WRITES and time.monotonic() < waited:  # its record, written after the page
        time.sleep(0.01)
    assert not frequency_caps._WRITES
    monkeypatch.setattr(frequency_caps, "_count_shown", count)
    assert _popups(app.get("/v1/home", token=token)) == []
