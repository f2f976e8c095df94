"""Per-customer frequency caps on the home page, within the page's budget.

The impression store is read in a worker thread (how often each capped slot was shown in its window),
the caps are applied on the event loop, and what is shown is then recorded in a worker thread. A cap
that cannot be checked in time is not honoured by guessing: the capped slots go out empty, and
nothing is recorded for them. A record still being written when the budget ends is kept (the items
are shown: the write is under way). A store that hangs ties up at most ``_THREADS`` threads; past
that, capped slots go out empty at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import anyio
import anyio.to_thread

from fulcrum_core.assembly.home import HomeItem, apply_frequency_caps, capped_slots
from fulcrum_core.data.impressions import ImpressionStore
from fulcrum_core.observability.throttle import ThrottledWarning
from fulcrum_core.runtime import Runtime
from fulcrum_core.settings import SlotConfig

__all__ = ["apply_caps"]

log = logging.getLogger("fulcrum.api")

Slots = dict[str, list[HomeItem]]

_THREADS = 16
_PLACES = "home.impression-threads"
_UNAVAILABLE = ThrottledWarning(log, "impression store unavailable; capped slots left empty")
_WRITES: set[asyncio.Task[None]] = set()
"""Impression writes the page stopped waiting for, kept until they land."""


class _StoreBusy(RuntimeError):
    """Every place is held by a thread still waiting for the impression store."""


@contextlib.contextmanager
def _place(runtime: Runtime) -> Iterator[None]:
    """Hold one of the runtime's places for an impression-store thread (held as long as it runs)."""
    places = runtime.extras.get(_PLACES)
    if places is None:
        places = runtime.extras.setdefault(_PLACES, threading.BoundedSemaphore(_THREADS))  # one wins
    if not places.acquire(blocking=False):
        raise _StoreBusy(f"{_THREADS} impression-store threads are still waiting for the database")
    try:
        yield
    finally:
        places.release()


def _count_shown(
    runtime: Runtime, customer_ref: str, capped: dict[str, SlotConfig], now: datetime
) -> dict[str, int]:
    """(worker thread) How many items of each capped slot the customer was shown within its window."""
    with _place(runtime):
        store = ImpressionStore(runtime.db)
        return {
            slot: store.count_since(customer_ref, slot, now - timedelta(hours=config.frequency_window_hours))
            for slot, config in capped.items()
        }


def _record_shown(runtime: Runtime, customer_ref: str, shown: Slots, now: datetime) -> None:
    """(worker thread) Remember each item shown in a capped slot."""
    with _place(runtime):
        store = ImpressionStore(runtime.db)
        for slot, items in shown.items():
            for item in items:
                store.record(customer_ref, slot, item.plugin, item.key, now)


def _without_capped(slots: Slots, runtime: Runtime) -> Slots:
    return {**slots, **{s: [] for s in capped_slots(runtime.settings.slots)}}


def _landed(write: asyncio.Task[None]) -> None:
    _WRITES.discard(write)
    if not write.cancelled() and (exc := write.exception()) is not None:
        _UNAVAILABLE(f"an impression shown after the page's budget was not recorded: {exc}")


async def apply_caps(
    runtime: Runtime, customer_ref: str, now: datetime, slots: Slots, budget_end: float
) -> Slots:
    """``slots`` with the customer's frequency caps applied and what capped slots show recorded,
    within the page's budget (``budget_end``, event loop clock; see the module)."""
    capped = {s: c for s, c in capped_slots(runtime.settings.slots).items() if slots.get(s)}
    if not capped:
        return slots
    with anyio.CancelScope(deadline=budget_end) as wait:
        try:
            counts = await anyio.to_thread.run_sync(
                _count_shown, runtime, customer_ref, capped, now, abandon_on_cancel=True
            )
        except Exception as exc:
            _UNAVAILABLE(f"{type(exc).__name__}: {exc}")
            return _without_capped(slots, runtime)
    if wait.cancelled_caught:
        _UNAVAILABLE("it did not answer within the home page's budget")
        return _without_capped(slots, runtime)
    slots = apply_frequency_caps(slots, counts, runtime.settings.slots)
    shown = {slot: slots[slot] for slot in capped if slots[slot]}
    if not shown:
        return slots
    write = asyncio.get_running_loop().create_task(
        anyio.to_thread.run_sync(_record_shown, runtime, customer_ref, shown, now)
    )
    _WRITES.add(write)
    write.add_done_callback(_landed)
    with anyio.CancelScope(deadline=budget_end):
        try:
            await asyncio.shield(write)
        except Exception as exc:  # not recorded, so not shown: the cap would not know about it
            _UNAVAILABLE(f"{type(exc).__name__}: {exc}")
            return _without_capped(slots, runtime)
    return slots
