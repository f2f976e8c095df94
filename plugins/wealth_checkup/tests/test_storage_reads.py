"""The home hook remembers what it showed through the async storage API."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import fulcrum_wealth_checkup
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PERSONAS, PluginHarness

MakeHarness = Callable[..., PluginHarness]


class RecordingStorage(MemoryStorage):
    """MemoryStorage that records document calls, async and plain."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def get(self, key: str) -> Any | None:
        self.calls.append("get")
        return super().get(key)

    def put(self, key: str, value: Any) -> None:
        self.calls.append("put")
        super().put(key, value)

    async def aget(self, key: str) -> Any | None:
        self.calls.append("aget")
        return super().get(key)

    async def aput(self, key: str, value: Any) -> None:
        self.calls.append("aput")
        super().put(key, value)


def test_home_is_async() -> None:
    """The host can run it inline when its storage read is answered from the cache."""
    assert inspect.iscoroutinefunction(fulcrum_wealth_checkup.home_slot_offers)


def test_a_visit_reads_once_and_writes_only_when_something_changed(make_harness: MakeHarness) -> None:
    """First visit: one read and one write; an unchanged second visit: one read, no write."""
    storage = RecordingStorage()
    harness = make_harness("affluent", storage=storage)
    assert harness.home_slot_offers()[-1].slot == "home.popup/v1"
    assert storage.calls == ["aget", "aput"]
    storage.calls.clear()
    assert "home.popup/v1" not in [o.slot for o in harness.home_slot_offers()]
    assert storage.calls == ["aget"]
    assert MemoryStorage.get(storage, f"last-checkup:{PERSONAS['affluent'].id}") is not None
