"""The display hooks read the cap counters through the async API; the contribution stays plain and fresh."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import fulcrum_pension
import pytest
from fulcrum_pension.cap import baseline_key, counter_key
from fulcrum_pension.contribution import PERSONAL_CONTRIBUTION
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PERSONAS, PluginHarness

MakeHarness = Callable[..., PluginHarness]
KEY = counter_key(PERSONAS["young_professional"].id, 2026)
BASE = baseline_key(PERSONAS["young_professional"].id, 2026)


class CountingStorage(MemoryStorage):
    """MemoryStorage that records which counter reads were async and which were plain."""

    def __init__(self) -> None:
        super().__init__()
        self.async_reads: list[str] = []
        self.sync_reads: list[str] = []

    def counter(self, key: str) -> int:
        self.sync_reads.append(key)
        return super().counter(key)

    def counters(self, keys: Sequence[str]) -> dict[str, int]:
        self.sync_reads.extend(keys)
        return {key: super(CountingStorage, self).counter(key) for key in keys}

    async def acounter(self, key: str) -> int:
        self.async_reads.append(key)
        return super().counter(key)

    async def acounters(self, keys: Sequence[str]) -> dict[str, int]:
        self.async_reads.extend(keys)
        return {key: super(CountingStorage, self).counter(key) for key in keys}


@pytest.mark.parametrize("hook", ["home_slot_offers", "search", "feed_items"])
def test_display_hooks_are_async(hook: str) -> None:
    """The host can run them inline when the storage answers from its cache."""
    assert inspect.iscoroutinefunction(getattr(fulcrum_pension, hook))
    assert not inspect.iscoroutinefunction(fulcrum_pension.execute_transaction)


def test_the_home_page_reads_the_counters_once_asynchronously(make_harness: MakeHarness) -> None:
    """One async read of this year's two counters per home call, none through the plain API (a
    counter written before the baseline existed counts on top of the provider's figure)."""
    storage = CountingStorage()
    storage.add(KEY, 150_000)
    notice = next(o for o in make_harness(storage=storage).home_slot_offers() if o.slot == "home.notice/v1")
    assert "¥8,500.00" in notice.title.zh_CN  # 12,000 - 2,000 (provider) - 1,500 (this plugin)
    assert storage.async_reads == [KEY, BASE]
    assert storage.sync_reads == []


def test_search_and_feed_read_asynchronously(make_harness: MakeHarness) -> None:
    """The contribution hit and the retirement cards take their figures from the async read."""
    storage = CountingStorage()
    harness = make_harness(storage=storage)
    assert harness.search("个人养老金")
    assert harness.feed_items("retirement")
    assert storage.async_reads == [KEY, BASE, KEY, BASE]
    assert storage.sync_reads == []


def test_a_contribution_reads_fresh_once_and_reports_adds_total(make_harness: MakeHarness) -> None:
    """``execute_transaction`` reads the counters with the plain API (fresh on the host), once; the room
    after comes from the value the atomic ``add`` returned."""
    storage = CountingStorage()
    result = make_harness(storage=storage).execute(PERSONAL_CONTRIBUTION, {"amount_fen": 300_000})
    assert result.status == "succeeded"
    assert result.data["room_left_fen"] == 700_000
    assert result.data["contributed_this_year_fen"] == 500_000
    assert storage.sync_reads == [KEY, BASE]
    assert storage.async_reads == []
