"""Per plugin × hook call counters kept in memory, shown at ``/v1/plugins``.

One worker's view only; the Prometheus metrics (added by the resilience work) are the shared one.
Recording happens on the event-loop thread, so plain counters suffice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import get_args

import msgspec

from fulcrum_core.dispatch.results import Outcome

__all__ = ["CallStats", "HookStat"]

_OUTCOMES: tuple[str, ...] = get_args(Outcome)


class HookStat(msgspec.Struct, frozen=True, kw_only=True):
    """Counters for one plugin's calls of one hook since the worker started."""

    plugin: str
    hook: str
    calls: int
    ok: int
    error: int
    timeout: int
    invalid: int
    rejected: int
    mean_ms: float
    max_ms: float
    last_problem: str | None = None


class _Counter:
    __slots__ = ("by_outcome", "last_problem", "max_s", "total_s")

    def __init__(self) -> None:
        self.by_outcome = dict.fromkeys(_OUTCOMES, 0)
        self.total_s = 0.0
        self.max_s = 0.0
        self.last_problem: str | None = None


class CallStats:
    """Latency and outcome counters per (plugin id, hook)."""

    def __init__(self) -> None:
        self._counters: dict[tuple[str, str], _Counter] = {}
        # The same counters by hook, then plugin: the hot path looks up plain strings, not tuples.
        self._by_hook: dict[str, dict[str, _Counter]] = {}

    def _counter(self, plugin: str, hook: str) -> _Counter:
        by_plugin = self._by_hook.get(hook)
        if by_plugin is None:
            by_plugin = self._by_hook[hook] = {}
        counter = by_plugin.get(plugin)
        if counter is None:
            counter = by_plugin[plugin] = self._counters[(plugin, hook)] = _Counter()
        return counter

    def record(self, plugin: str, hook: str, outcome: Outcome, seconds: float, detail: str = "") -> None:
        """Count one call; ``detail`` of a failed call is kept as the last problem seen."""
        counter = self._counter(plugin, hook)
        counter.by_outcome[outcome] += 1
        if outcome != "rejected":
            counter.total_s += seconds
            counter.max_s = max(counter.max_s, seconds)
        if outcome != "ok":
            counter.last_problem = f"{outcome}: {detail}" if detail else outcome

    def record_ok(self, hook: str, calls: Iterable[tuple[str, float]]) -> None:
        """Count calls of ``hook`` that ended ``ok``, as ``(plugin, seconds)``: ``record`` in a batch."""
        by_plugin = self._by_hook.get(hook) or {}
        for plugin, seconds in calls:
            counter = by_plugin.get(plugin)
            if counter is None:
                counter = self._counter(plugin, hook)
                by_plugin = self._by_hook[hook]
            counter.by_outcome["ok"] += 1
            counter.total_s += seconds
            if seconds > counter.max_s:
                counter.max_s = seconds

    def snapshot(self) -> list[HookStat]:
        """Every counter as a struct, sorted by plugin then hook."""
        out = []
        for (plugin, hook), c in sorted(self._counters.items()):
            timed = sum(c.by_outcome.values()) - c.by_outcome["rejected"]
            out.append(HookStat(
                plugin=plugin, hook=hook, calls=sum(c.by_outcome.values()), ok=c.by_outcome["ok"],
                error=c.by_outcome["error"], timeout=c.by_outcome["timeout"], invalid=c.by_outcome["invalid"],
                rejected=c.by_outcome["rejected"],
                mean_ms=round(c.total_s * 1000 / timed, 3) if timed else 0.0,
                max_ms=round(c.max_s * 1000, 3), last_problem=c.last_problem,
            ))
        return out
