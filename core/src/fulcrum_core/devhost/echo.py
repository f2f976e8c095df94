"""Show each hook call of the plugin under development on the terminal, with latency and scope denials.

The dispatcher records every call's outcome, latency and problem in its :class:`CallStats`; this
subclass keeps doing that (``/v1/plugins`` still shows the counters) and also writes one line per
call of the watched plugin. When the plugin raises, :meth:`EchoStats.show_error` (the dispatcher's
``on_plugin_error``) prints where: the traceback's frames in the plugin's own code, once per distinct
error, so a crash names its file and line without repeating on every request.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import traceback
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

    def __init__(self, plugin_id: str, stream: TextIO | None = None, *, code_dir: str | None = None) -> None:
        super().__init__()
        self.plugin_id = plugin_id
        self._stream = stream
        self._lock = threading.Lock()
        self._code_dir = os.path.join(os.path.realpath(code_dir), "") if code_dir else None
        self._shown: set[tuple[str, str, str, int | None]] = set()

    def show_error(self, plugin: str, hook: str, exc: BaseException) -> None:
        """Print the traceback of an exception the watched plugin raised (its own frames; all of them when
        none is under ``code_dir``), the first time this error (type, hook, place) is seen."""
        if plugin != self.plugin_id:
            return
        frames = traceback.extract_tb(exc.__traceback__)
        root = self._code_dir
        own = [f for f in frames if root and os.path.realpath(f.filename).startswith(root)]
        shown = own or list(frames)
        where = shown[-1] if shown else None
        key = (hook, type(exc).__qualname__, where.filename if where else "", where.lineno if where else None)
        with self._lock:
            if key in self._shown:
                return
            self._shown.add(key)
            stream = self._stream or sys.stdout
            which = "in the plugin's code" if own else "(no frame in the plugin's code)"
            stream.write(f"[hook] {plugin} {hook} raised {type(exc).__name__} {which}; shown once:\n")
            stream.write("".join(traceback.format_list(shown)))
            stream.write("".join(traceback.format_exception_only(exc)))
            stream.flush()

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
