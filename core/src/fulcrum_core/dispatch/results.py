"""What a dispatch produces: per-plugin results, the degraded list, and the single-call error."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["Degraded", "DegradedReason", "Gathered", "Outcome", "PluginCallError", "PluginExit"]

DegradedReason = Literal["error", "timeout", "invalid", "rejected"]
"""Why a plugin's contribution was dropped: it raised, missed its deadline, returned the wrong
shape, or was not called at all (``rejected``: a guard such as a circuit breaker refused the call)."""

Outcome = Literal["ok", "error", "timeout", "invalid", "rejected"]
"""How one plugin call ended, as recorded in the call statistics."""


class Degraded(msgspec.Struct, frozen=True, kw_only=True):
    """A plugin left out of a response, and why; shown to clients in every ``degraded`` list."""

    plugin: str
    hook: str
    reason: DegradedReason
    detail: str = ""


class Gathered(msgspec.Struct, kw_only=True):
    """The validated results of one hook over many plugins, by plugin id, and who was left out."""

    results: dict[str, list[Any]] = msgspec.field(default_factory=dict)
    degraded: list[Degraded] = msgspec.field(default_factory=list)


class PluginCallError(Exception):
    """A single plugin call failed: ``kind`` is ``error``, ``timeout``, ``invalid`` or ``rejected``;
    ``data_unavailable``: it stopped at customer data the bank did not deliver in time (not its fault)."""

    def __init__(
        self, plugin: str, hook: str, kind: DegradedReason, detail: str, *, data_unavailable: bool = False
    ) -> None:
        self.plugin = plugin
        self.hook = hook
        self.kind = kind
        self.detail = detail
        self.data_unavailable = data_unavailable
        super().__init__(f"plugin {plugin!r} {hook}: {kind}: {detail}")


class PluginExit(Exception):
    """A plugin's coroutine raised a ``BaseException`` that is not an ``Exception`` (``SystemExit``,
    ``KeyboardInterrupt``, ``GeneratorExit``, its own subclass) in its task or in a task it left behind
    (``leftovers.py``), or its worker thread raised ``KeyboardInterrupt``: carried as an ordinary error,
    because asyncio re-raises ``SystemExit`` and ``KeyboardInterrupt`` from a task step out of the event
    loop, which would stop the worker. No real interrupt arrives there: the server handles SIGINT itself,
    and no signal reaches a worker thread. Nor does one arrive in plugin code run inline on the loop's
    thread (a ``@nonblocking`` function, a coroutine's first step, the check of its result), for the same
    reason: the dispatcher takes a ``KeyboardInterrupt`` there for the plugin's error too, as it does any
    other exception. Cancellation is not wrapped: it is the host's."""

    def __init__(self, raised: BaseException) -> None:
        self.raised = raised
        super().__init__(raised)
