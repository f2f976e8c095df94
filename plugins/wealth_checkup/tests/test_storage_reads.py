"""The home hook remembers what it showed through the async storage API."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import fulcrum_wealth_checkup
import pytest
from fulcrum_sdk.errors import StorageUnavailable
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
    """First visit: one read and one write; the next, the popup still owed: one read, no write; opening
    the report: one read and the write that settles the notice; a visit after it: one read, no popup."""
    storage = RecordingStorage()
    harness = make_harness("affluent", storage=storage)
    assert harness.home_slot_offers()[-1].slot == "home.popup/v1"
    assert storage.calls == ["aget", "aput"]
    storage.calls.clear()
    assert harness.home_slot_offers()[-1].slot == "home.popup/v1"
    assert storage.calls == ["aget"]
    storage.calls.clear()
    harness.page("report")
    assert storage.calls == ["aget", "aput"]
    storage.calls.clear()
    assert "home.popup/v1" not in [o.slot for o in harness.home_slot_offers()]
    assert storage.calls == ["aget"]
    assert MemoryStorage.get(storage, f"last-checkup:{PERSONAS['affluent'].id}") is not None


def test_opening_the_report_owing_nothing_writes_nothing(make_harness: MakeHarness) -> None:
    """The report opened with no notice owed (or no visit yet): one read, no write."""
    storage = RecordingStorage()
    harness = make_harness("young_family", storage=storage)
    harness.page("report")
    harness.home_slot_offers()
    storage.calls.clear()
    harness.page("report")
    assert storage.calls == ["aget"]


class FailingStorage(MemoryStorage):
    """MemoryStorage whose async reads or writes fail as an unreachable platform store does."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing

    async def aget(self, key: str) -> Any | None:
        if self.failing == "aget":
            raise StorageUnavailable("the store is down")
        return super().get(key)

    async def aput(self, key: str, value: Any) -> None:
        if self.failing == "aput":
            raise StorageUnavailable("the store is down")
        super().put(key, value)


@pytest.mark.parametrize("failing", ["aget", "aput"])
def test_the_report_opens_when_storage_fails_and_the_notice_stays_owed(
    make_harness: MakeHarness, failing: str
) -> None:
    """Settling the popup's notice is bookkeeping: the report still renders, and the popup is offered
    again on the next visit."""
    storage = FailingStorage("")
    harness = make_harness("affluent", storage=storage)
    harness.home_slot_offers()
    storage.failing = failing
    page = harness.page("report")
    assert page is not None
    assert page.sections
    storage.failing = ""
    assert harness.home_slot_offers()[-1].slot == "home.popup/v1"
