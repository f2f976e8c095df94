"""A bulkhead: a non-blocking cap on how many calls of one plugin × hook run at the same time.

A plugin that hangs keeps its calls in flight until their deadlines; without a cap, a burst of home
page requests would pile up thousands of its coroutines. When the cap is reached the next call is
rejected at once: the hot path never queues or waits for room.

Like the circuit breaker it belongs to one event loop and is used from that loop's thread only, so it
is a plain counter with no lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Bulkhead"]


class Bulkhead:
    """At most ``max_concurrent`` calls inside at once; ``try_enter`` refuses the next one."""

    __slots__ = ("_active", "_max", "_rejected", "name")

    def __init__(self, max_concurrent: int, *, name: str = "") -> None:
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"`max_concurrent` must be an integer >= 1, got {max_concurrent!r}")
        self.name = name
        self._max = max_concurrent
        self._active = 0
        self._rejected = 0

    @property
    def max_concurrent(self) -> int:
        """The cap."""
        return self._max

    @property
    def active(self) -> int:
        """Calls inside right now."""
        return self._active

    @property
    def available(self) -> int:
        """Calls that could still enter right now."""
        return self._max - self._active

    @property
    def rejected(self) -> int:
        """Calls refused because the bulkhead was full, since it was made."""
        return self._rejected

    def try_enter(self) -> bool:
        """Take a place if one is free; False means the call must be skipped. Pair with ``leave()``."""
        if self._active < self._max:
            self._active += 1
            return True
        self._rejected += 1
        return False

    def leave(self) -> None:
        """Give back a place taken by a successful ``try_enter``."""
        if self._active == 0:
            raise RuntimeError(f"bulkhead {self.name!r}: leave() without a matching try_enter()")
        self._active -= 1

    @contextmanager
    def entered(self) -> Iterator[bool]:
        """``with bulkhead.entered() as ok:`` — ``ok`` is False when full; the place is freed on any exit."""
        if not self.try_enter():
            yield False
            return
        try:
            yield True
        finally:
            self._active -= 1
