"""Per-customer frequency caps on the home page, within the page's budget.

The impression store is read in a worker thread (how often each capped slot was shown in its window),
the caps are applied on the event loop, and what is shown is then recorded in a worker thread. A cap
that cannot be checked in time is not honoured by guessing: the capped slots go out empty, and
nothing is recorded for them (a count read in time counts, though the event loop was held past the
budget before it saw it). A record still being written when the budget ends is kept (the items
are shown: the write is under way). A store that hangs ties up at most ``_THREADS`` threads; past
that, capped slots go out empty at once.

A customer at a cap stays at it until the oldest of the impressions that fill it leaves the window,
so each worker remembers that moment (:class:`_AtCap`) and answers the customer's pages until then
without reading the store. An item a plugin keeps offering (a notice owed until the customer reads
it) then costs one read per worker and window, not one per page. Only the race below takes records
back: a worker that read the count while both pages' records stood holds the slot back until then,
erring as the caps do, towards showing less.

Two pages for one customer at once (an app that asks twice when it opens, or two workers) may both
read the count before either records. So once recorded, the count is read again: a slot found over
its cap gives back the items this page added past it, and their records, so at most the cap is shown
(both pages may give back: the popup then waits for the next page, never shown twice). Unless the
page already stopped waiting and showed them: then the records stay, like any write under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import anyio

from fulcrum_core import host_threads
from fulcrum_core.assembly.home import HomeItem, apply_frequency_caps, capped_slots
from fulcrum_core.data.impressions import ImpressionStore
from fulcrum_core.dispatch.leftovers import host_task
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


_AT_CAP = "home.at-cap"
_AT_CAP_ENTRIES = 100_000


class _AtCap:
    """(event loop) Until when each (customer, slot) is known to be at its cap, in this worker; at most
    ``_AT_CAP_ENTRIES``, the oldest learnt dropped first."""

    def __init__(self) -> None:
        self._until: dict[tuple[str, str], datetime] = {}

    def holds(self, customer_ref: str, slot: str, now: datetime) -> bool:
        until = self._until.get((customer_ref, slot))
        return until is not None and now < until

    def learn(self, customer_ref: str, slot: str, until: datetime) -> None:
        key = (customer_ref, slot)
        self._until.pop(key, None)
        if len(self._until) >= _AT_CAP_ENTRIES:
            del self._until[next(iter(self._until))]
        self._until[key] = until


def _at_cap(runtime: Runtime) -> _AtCap:
    known = runtime.extras.get(_AT_CAP)
    if known is None:
        known = runtime.extras.setdefault(_AT_CAP, _AtCap())
    return known  # type: ignore[no-any-return]


def _count_shown(
    runtime: Runtime, customer_ref: str, capped: dict[str, SlotConfig], now: datetime
) -> dict[str, tuple[int, datetime | None]]:
    """(worker thread) How many items of each capped slot the customer was shown within its window,
    and, for a slot at its cap, until when it stays there."""
    with _place(runtime):
        store = ImpressionStore(runtime.db)
        found: dict[str, tuple[int, datetime | None]] = {}
        for slot, config in capped.items():
            window = timedelta(hours=config.frequency_window_hours)
            count = store.count_since(customer_ref, slot, now - window)
            cap = config.frequency_cap or 0
            nth = store.nth_latest(customer_ref, slot, now - window, cap) if cap and count >= cap else None
            found[slot] = (count, None if nth is None else nth + window)
        return found


class _Verdict:
    """Which capped slots went over their cap with this page's records: settled once, either by the
    record thread (and the page then holds those items back) or by the page giving up waiting first
    (and the records then stay: the page showed them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._over: dict[str, int] = {}
        self._page_gone = False

    def settle(self, over: dict[str, int]) -> bool:
        """(record thread) Slot id → how many of the page's items to give back; False when too late."""
        with self._lock:
            if self._page_gone:
                return False
            self._over = over
            return True

    def close(self) -> dict[str, int]:
        """(the page) What was settled, if anything; nothing can be settled afterwards."""
        with self._lock:
            self._page_gone = True
            return self._over


def _record_shown(
    runtime: Runtime, customer_ref: str, shown: Slots, capped: dict[str, SlotConfig], now: datetime,
    verdict: _Verdict,
) -> None:
    """(worker thread) Remember each item shown in a capped slot, then count again (see the module)."""
    with _place(runtime):
        store = ImpressionStore(runtime.db)
        recorded = {
            slot: [store.record(customer_ref, slot, item.plugin, item.key, now) for item in items]
            for slot, items in shown.items()
        }
        try:
            over: dict[str, int] = {}
            for slot, ids in recorded.items():
                config = capped[slot]
                since = now - timedelta(hours=config.frequency_window_hours)
                excess = store.count_since(customer_ref, slot, since) - (config.frequency_cap or 0)
                if excess > 0:
                    over[slot] = min(excess, len(ids))
            if over and verdict.settle(over):
                store.forget([i for slot, n in over.items() for i in recorded[slot][-n:]])
        except Exception as exc:  # recorded and shown: a cap that cannot be checked again stays as read
            _UNAVAILABLE(f"{type(exc).__name__}: {exc}")


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
    at_cap = _at_cap(runtime)
    counts = {s: c.frequency_cap or 0 for s, c in capped.items() if at_cap.holds(customer_ref, s, now)}
    unknown = {s: c for s, c in capped.items() if s not in counts}
    if not unknown:
        return apply_frequency_caps(slots, counts, runtime.settings.slots)  # nothing to show or record
    # The read counts when it answered within the budget, even if the event loop was held past it
    # meanwhile (a stall: the loop then ran the budget's timeout before it saw the answer).
    in_time_until = time.monotonic() + max(0.0, budget_end - anyio.current_time())
    answered: list[dict[str, tuple[int, datetime | None]]] = []

    def read_counts() -> dict[str, tuple[int, datetime | None]]:
        found = _count_shown(runtime, customer_ref, unknown, now)
        if time.monotonic() <= in_time_until:
            answered.append(found)
        return found

    with anyio.CancelScope(deadline=budget_end) as wait:
        try:
            read = await host_threads.run_sync(read_counts, abandon_on_cancel=True)
        except Exception as exc:
            _UNAVAILABLE(f"{type(exc).__name__}: {exc}")
            return _without_capped(slots, runtime)
    if wait.cancelled_caught:
        if not answered:
            _UNAVAILABLE("it did not answer within the home page's budget")
            return _without_capped(slots, runtime)
        read = answered[0]
    for slot, (count, until) in read.items():
        counts[slot] = count
        if until is not None:
            at_cap.learn(customer_ref, slot, until)
    capped = unknown
    slots = apply_frequency_caps(slots, counts, runtime.settings.slots)
    shown = {slot: slots[slot] for slot in capped if slots[slot]}
    if not shown:
        return slots
    verdict = _Verdict()
    write = host_task(
        host_threads.run_sync(_record_shown, runtime, customer_ref, shown, capped, now, verdict)
    )
    _WRITES.add(write)
    write.add_done_callback(_landed)
    with anyio.CancelScope(deadline=budget_end):
        try:
            await asyncio.shield(write)
        except Exception as exc:  # not recorded, so not shown: the cap would not know about it
            _UNAVAILABLE(f"{type(exc).__name__}: {exc}")
            return _without_capped(slots, runtime)
    over = verdict.close()  # what the thread settled, or nothing: the page stopped waiting and shows all
    return {**slots, **{slot: slots[slot][: len(slots[slot]) - n] for slot, n in over.items()}}
