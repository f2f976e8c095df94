"""How the display hooks read stock: one batched ``acounters`` per hook call, never the sync API."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import fulcrum_merchant_promo
import pytest
from fulcrum_merchant_promo.redeem import REDEEM_COUPON
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PluginHarness

MakeHarness = Callable[..., PluginHarness]


class CountingStorage(MemoryStorage):
    """MemoryStorage that records every read: the async batched ones, and any sync one."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.sync_reads: list[str] = []

    async def acounters(self, keys: Sequence[str]) -> dict[str, int]:
        self.batches.append(list(keys))
        return self.counters(keys)

    def counter(self, key: str) -> int:
        self.sync_reads.append(key)
        return super().counter(key)


@pytest.mark.parametrize("hook", ["home_slot_offers", "search", "feed_items"])
def test_display_hooks_are_async(hook: str) -> None:
    """The host can run them inline when the storage answers from its cache."""
    assert inspect.iscoroutinefunction(getattr(fulcrum_merchant_promo, hook))


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda h: h.home_slot_offers(), {"stock-taken:SZ-TEA-10", "stock-taken:SZ-ROAST-30"}),
        (lambda h: h.search("茶饮"), None),
        (lambda h: h.feed_items("life"), None),
    ],
)
def test_each_hook_call_reads_stock_once_in_one_batch(
    make_harness: MakeHarness, call: Callable[[PluginHarness], Any], expected: set[str] | None
) -> None:
    """One ``acounters`` per call with each needed key once, and no per-coupon sync reads."""
    storage = CountingStorage()
    harness = make_harness("young_professional", storage=storage)
    assert call(harness)
    [batch] = storage.batches
    assert len(batch) == len(set(batch))
    assert all(key.startswith("stock-taken:SZ-") for key in batch)
    if expected is not None:  # the home page asks only for the featured coupons' stock
        assert set(batch) == expected
    assert storage.sync_reads == []


def test_no_city_means_no_read(make_harness: MakeHarness) -> None:
    """Without the customer's city the plugin shows nothing and reads nothing."""
    storage = CountingStorage()
    harness = make_harness(scopes={"slot:home.banner"}, storage=storage)
    assert harness.home_slot_offers() == []
    assert storage.batches == []


def test_redeeming_reads_stock_fresh_through_the_sync_api(make_harness: MakeHarness) -> None:
    """``execute_transaction`` stays plain: its reads are the sync (fresh, on the host) ones."""
    storage = CountingStorage()
    harness = make_harness("young_professional", storage=storage)
    result = harness.execute(REDEEM_COUPON, {"coupon_id": "SZ-TEA-10"})
    assert result.status == "succeeded"
    assert "stock-taken:SZ-TEA-10" in storage.sync_reads
    assert storage.batches == []
    assert not inspect.iscoroutinefunction(fulcrum_merchant_promo.execute_transaction)
