"""``GET /v1/plugins``: what this worker loaded, what runs, what was quarantined, and call statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
from fulcrum_sdk.models import LocalizedText
from litestar import Request, get

from fulcrum_core.dispatch.stats import HookStat
from fulcrum_core.registry_host.host import watcher_of
from fulcrum_core.runtime import Runtime, runtime_of

__all__ = ["ROUTES", "HeldPlugin", "PluginInfo", "PluginsResponse", "Problem", "list_plugins"]


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


class HeldPlugin(msgspec.Struct, frozen=True, kw_only=True):
    """An installed plugin held back unimported by the registry check: why, and when it is asked again.

    ``next_check``: ``scheduled`` (at ``next_check_at``, or at once on a registry change), ``next_poll``
    (not asked since startup), or ``never`` (the installed copy is not the reviewed one: reinstall the
    approved wheel and restart the worker).
    """

    id: str
    reason: str
    checks: int
    next_check: Literal["scheduled", "next_poll", "never"]
    next_check_at: datetime | None = None


class PluginsResponse(msgspec.Struct, frozen=True, kw_only=True):
    """The plugin state of the worker that answered; a held plugin is also listed as quarantined."""

    plugins: list[PluginInfo]
    quarantined: list[Problem]
    held: list[HeldPlugin]
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
        held=_held(runtime),
        skipped=[Problem(id=k, reason=v) for k, v in sorted(plugins.skipped.items())],
        rejected_transaction_types=[Problem(id=k, reason=v) for k, v in sorted(rejected.items())],
        transaction_types={key: owner.id for key, (owner, _) in sorted(types.items())},
        stats=runtime.dispatcher.stats.snapshot(),
    )


def _held(runtime: Runtime) -> list[HeldPlugin]:
    plugins, watcher = runtime.plugins, watcher_of(runtime)
    schedule = watcher.held_status() if watcher is not None else {}
    now = datetime.now(UTC)
    held: list[HeldPlugin] = []
    for pid in sorted(plugins.held):
        status = schedule.get(pid)
        if status is None or watcher is None:
            reason = plugins.quarantined.get(pid, "held back by the registry check")
            held.append(HeldPlugin(id=pid, reason=reason, checks=0, next_check="next_poll"))
        elif status.next_check is None:
            held.append(HeldPlugin(id=pid, reason=status.reason, checks=status.checks, next_check="never"))
        else:
            at = now + timedelta(seconds=max(status.next_check - watcher.clock(), 0.0))
            held.append(HeldPlugin(
                id=pid, reason=status.reason, checks=status.checks, next_check="scheduled", next_check_at=at,
            ))
    return held


ROUTES: list[Any] = [list_plugins]
