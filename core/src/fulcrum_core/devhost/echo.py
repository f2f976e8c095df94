"""Show each hook call of the plugin under development on the terminal, with latency and scope denials.

The dispatcher records every call's outcome, latency and problem in its :class:`CallStats`; this
subclass keeps doing that (``/v1/plugins`` still shows the counters) and also writes one line per
call of the watched plugin, so the dispatcher itself needs no change.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Iterable
from typing import TextIO

from fulcrum_core.dispatch.results import Outcome
from fulcrum_core.dispatch.stats import CallStats

__all__ = ["EchoStats", "describe_call"]

# ScopeDenied's message, as the dispatcher reports it: "ScopeDenied: plugin 'x' may not use scope 'y': why; …"
_DENIED = re.compile(r"ScopeDenied: plugin '[^']*' may not use scope '([^']+)': ([^;]+)")


def describe_call(plugin: str, hook: str, outcome: Outcome, seconds: float, detail: str = "") -> str:
    """One terminal line for a call: ``[hook] plugin hook outcome 1.2 ms`` and why it failed."""
    line = f"[hook] {plugin} {hook} {outcome} {seconds * 1000:.1f} ms"
    denied = _DENIED.search(detail)
    if denied:
        return f"{line}  scope denied: {denied.group(1)} ({denied.group(2)})"
    return f"{line}  {detail}" if detail else line


class EchoStats(CallStats):
    """Call counters that also print every call of ``plugin_id`` to ``stream``."""

    def __init__(self, plugin_id: str, stream: TextIO | None = None) -> None:
        super().__init__()
        self.plugin_id = plugin_id
        self._stream = stream
        self._lock = threading.Lock()

    def record(self, plugin: str, hook: str, outcome: Outcome, seconds: float, detail: str = "") -> None:
        """Count the call as :class:`CallStats` does; print it when it is the watched plugin's."""
        super().record(plugin, hook, outcome, seconds, detail)
        self._echo(plugin, hook, outcome, seconds, detail)

    def record_ok(self, hook: str, calls: Iterable[tuple[str, float]]) -> None:
        """Count the calls as :class:`CallStats` does; print those of the watched plugin."""
        calls = list(calls)
        super().record_ok(hook, calls)
        for plugin, seconds in calls:
            self._echo(plugin, hook, "ok", seconds, "")

    def _echo(self, plugin: str, hook: str, outcome: Outcome, seconds: float, detail: str) -> None:
        if plugin != self.plugin_id:
            return
        stream = self._stream or sys.stdout
        with self._lock:
            stream.write(describe_call(plugin, hook, outcome, seconds, detail) + "\n")
            stream.flush()
