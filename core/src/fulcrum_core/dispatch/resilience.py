"""The breaker and bulkhead of every plugin × hook, made on first use from settings.

Each hook's breaker counts a call slower than the hook's slow-call threshold as slow (a call cut off at
the deadline too) and stays open at least the deadline (:meth:`BreakerConfig.for_deadline`); each
bulkhead holds ``settings.bulkhead_size`` calls. Breaker
state changes go to the listeners (metrics, logs). Like the breaker and bulkhead themselves, this
belongs to one event loop and is used from its thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from fulcrum_core.dispatch.breaker import (
    BreakerConfig,
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    StateTransition,
    new_breaker,
)
from fulcrum_core.dispatch.bulkhead import Bulkhead
from fulcrum_core.dispatch.clock import MONOTONIC, Clock

__all__ = ["Guard", "Guards"]

log = logging.getLogger("fulcrum.dispatch")

_CLOSED = BreakerState.CLOSED
_HALF_OPEN = BreakerState.HALF_OPEN


class Guard:
    """The breaker and bulkhead of one plugin × hook."""

    __slots__ = ("breaker", "bulkhead", "hook", "plugin", "stuck")

    def __init__(self, plugin: str, hook: str, breaker: CircuitBreaker, bulkhead: Bulkhead) -> None:
        self.plugin = plugin
        self.hook = hook
        self.breaker = breaker
        self.bulkhead = bulkhead
        # Calls given up on (timed out, or their caller gone) that are still running: a worker thread
        # or a task that has not ended. Other places held (calls within their deadline) are not stuck.
        self.stuck = 0

    def free(self) -> bool:
        """True when a call may start with no bookkeeping: the breaker is closed (it then admits
        every call and counts none) and the bulkhead has room."""
        # Their fields, not their properties: asked once per plugin call on the dispatcher's fast path.
        bulkhead = self.bulkhead
        return self.breaker._state is _CLOSED and bulkhead._active < bulkhead._max

    def admit(self) -> str | None:
        """``None`` when the call may run (a bulkhead place is then taken), else why not.

        No half-open probe goes out while calls that timed out are still running (worker threads or
        tasks that never returned): the plugin is still hung, and each probe would tie up one more
        thread for good. Probes resume once those calls have ended. Calls still within their deadline
        (another request's params check, a probe) do not hold one back."""
        breaker = self.breaker
        if not breaker.try_acquire():
            return "circuit breaker open"
        if self.stuck > 0 and breaker.state is _HALF_OPEN:
            breaker.release()
            return f"circuit breaker half-open: still running {self.stuck} calls that timed out"
        if not self.bulkhead.try_enter():
            breaker.release()
            return f"bulkhead full ({self.bulkhead.max_concurrent} calls in flight)"
        return None


def _log_transition(event: StateTransition) -> None:
    log.warning("breaker %s: %s → %s", event.breaker, event.from_state, event.to_state)


class Guards:
    """Every ``Guard``, by (plugin id, hook)."""

    def __init__(
        self,
        config: BreakerConfig,
        deadline_s: Callable[[str], float],
        bulkhead_size: int,
        *,
        slow_call_s: Callable[[str], float] | None = None,
        clock: Clock = MONOTONIC,
        listeners: Iterable[Callable[[StateTransition], None]] = (),
    ) -> None:
        self._config = config
        self._deadline_s = deadline_s
        # A hook's slow-call threshold in seconds; None → the hook's deadline.
        self._slow_call_s = slow_call_s if slow_call_s is not None else deadline_s
        self._bulkhead_size = bulkhead_size
        # Breakers made from now on read this clock (tests swap in a VirtualClock before the first call).
        self.clock = clock
        self._listeners = [_log_transition, *listeners]
        self._by_key: dict[tuple[str, str], Guard] = {}
        self._by_hook: dict[str, dict[str, Guard]] = {}

    def get(self, plugin: str, hook: str) -> Guard:
        """The guard of ``plugin`` × ``hook`` (made on first use)."""
        guard = self._by_key.get((plugin, hook))
        if guard is None:
            name = f"{plugin}:{hook}"
            config = self._config.for_deadline(self._deadline_s(hook), self._slow_call_s(hook))
            breaker = new_breaker(name, config, clock=self.clock, listeners=self._listeners)
            guard = self._by_key[(plugin, hook)] = Guard(
                plugin, hook, breaker, Bulkhead(self._bulkhead_size, name=name)
            )
            self.of_hook(hook)[plugin] = guard
        return guard

    def of_hook(self, hook: str) -> dict[str, Guard]:
        """The guards of ``hook`` made so far, by plugin id (live: :meth:`get` adds to it). A caller
        looping over plugins looks each up here, and asks :meth:`get` only for one not made yet."""
        by_plugin = self._by_hook.get(hook)
        if by_plugin is None:
            by_plugin = self._by_hook[hook] = {}
        return by_plugin

    def deadline_s(self, hook: str) -> float:
        """The deadline of ``hook`` in seconds: how long a call admitted now may still be running."""
        return self._deadline_s(hook)

    @property
    def config(self) -> BreakerConfig:
        """The breaker rules every guard is made with (before each hook's slow-call threshold)."""
        return self._config

    def add_listener(self, listener: Callable[[StateTransition], None]) -> None:
        """Tell ``listener`` about every later breaker transition, of existing and future breakers."""
        self._listeners.append(listener)
        for guard in self._by_key.values():
            guard.breaker.add_listener(listener)

    def snapshot(self) -> list[BreakerSnapshot]:
        """Every breaker's state, sorted by name."""
        return sorted((g.breaker.snapshot() for g in self._by_key.values()), key=lambda s: s.name)

    def all(self) -> list[Guard]:
        """Every guard made so far."""
        return list(self._by_key.values())
