"""What a dispatch produces: per-plugin results, the degraded list, and the single-call error."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = ["Degraded", "DegradedReason", "Gathered", "Outcome", "PluginCallError"]

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
