"""Clocks for the dispatcher's timers: the real monotonic clock, and a virtual one tests drive by hand.

Breakers and deadlines read time only through a ``Clock`` so that state-machine tests can move time
forward explicitly instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

__all__ = ["MONOTONIC", "Clock", "MonotonicClock", "VirtualClock", "wait_until"]


@runtime_checkable
class Clock(Protocol):
    """A source of monotonic time in seconds; only differences between readings mean anything."""

    def monotonic(self) -> float:
        """Seconds since an arbitrary fixed point; never goes backwards."""
        ...


class MonotonicClock:
    """The process's monotonic clock (``time.monotonic``): the clock used in production."""

    __slots__ = ()

    def monotonic(self) -> float:
        """Seconds from ``time.monotonic()``."""
        return time.monotonic()


MONOTONIC: Clock = MonotonicClock()
"""The shared production clock; it holds no state, so one instance serves every breaker."""


class VirtualClock:
    """A clock that moves only when told to, so timer-driven behaviour is tested without sleeping."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def monotonic(self) -> float:
        """The current virtual time in seconds."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (must be >= 0) and return the new reading."""
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go backwards (advance by {seconds!r})")
        self._now += seconds
        return self._now


async def wait_until(futures: Iterable[asyncio.Future[Any]], ends: float, now: Callable[[], float]) -> None:
    """``asyncio.wait`` for ``futures`` until ``ends`` on the clock ``now`` reads, and not a moment less.

    uvloop runs its timers on a millisecond clock, rounding the delay and its start, so a wait of ``d``
    seconds can end up to a millisecond early; a call still pending then would be judged late before its
    deadline. A wait that ends early with futures pending waits again for the rest. Waits at least once
    (a loop pass), as ``asyncio.wait`` with no time left does. Never cancels the futures."""
    pending = set(futures)
    while True:
        _, pending = await asyncio.wait(pending, timeout=max(0.0, ends - now()))
        if not pending or now() >= ends:
            return
