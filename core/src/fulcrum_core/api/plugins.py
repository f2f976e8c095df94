"""``GET /v1/plugins``: what this worker loaded, what runs, what was quarantined, and call statistics."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from fulcrum_sdk.models import LocalizedText
from litestar import Request, get

from fulcrum_core.dispatch.stats import HookStat
from fulcrum_core.runtime import runtime_of

__all__ = ["ROUTES", "PluginInfo", "PluginsResponse", "Problem", "list_plugins"]


class PluginInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One loaded plugin and whether it runs now (``reason`` says why not)."""

    id: str
    version: str
    kind: str
    name: LocalizedText
    publisher: str
    hooks: list[str]
    granted_scopes: list[str]
    state: Literal["active", "inactive"]
    reason: str | None = None


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """Something left out at load time (a plugin or a transaction type) and why."""

    id: str
    reason: str


class PluginsResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The plugin state of the worker that answered."""

    plugins: list[PluginInfo]
    quarantined: list[Problem]
    skipped: list[Problem]
    rejected_transaction_types: list[Problem]
    transaction_types: dict[str, str]
    stats: list[HookStat]


@get("/v1/plugins", opt={"scopes": ["platform:read"]}, tags=["operations"], summary="Plugins and call stats")
async def list_plugins(request: Request[Any, Any, Any]) -> PluginsResponse:
    """Loaded plugins (hooks, grants, state), quarantined and skipped ones, and per-hook call counters."""
    runtime = runtime_of(request)
    plugins = runtime.plugins
    inactive, types, rejected = plugins.inactive, plugins.all_transaction_types, plugins.rejected_types
    return PluginsResponse(
        plugins=[
            PluginInfo(
                id=p.id, version=p.version, kind=p.kind, name=p.manifest.name, publisher=p.manifest.publisher,
                hooks=sorted(p.hooks), granted_scopes=sorted(p.granted),
                state="inactive" if p.id in inactive else "active", reason=inactive.get(p.id),
            )
            for p in plugins.loaded.values()
        ],
        quarantined=[Problem(id=k, reason=v) for k, v in sorted(plugins.quarantined.items())],
        skipped=[Problem(id=k, reason=v) for k, v in sorted(plugins.skipped.items())],
        rejected_transaction_types=[Problem(id=k, reason=v) for k, v in sorted(rejected.items())],
        transaction_types={key: owner.id for key, (owner, _) in sorted(types.items())},
        stats=runtime.dispatcher.stats.snapshot(),
    )


ROUTES: list[Any] = [list_plugins]
