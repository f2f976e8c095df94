"""What the branch layer gives one customer in one request: which plugins, where pinned, which settings.

Built once per request from the store's precomputed effective configuration of the customer's
branch, split once per configuration into plugins on for everyone (a set lookup per request) and
plugins behind a rollout, allow-list or version range (one hash, one cached version check). A plugin
runs for the customer only when the branch configuration has it on, the customer is in its rollout
(or allow-list), and the installed release satisfies the configured version range. A loaded plugin
that neither ``hq.toml`` nor the branch file names is off: branch teams decide what their customers get.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from fulcrum_core.branches.layering import EffectiveConfig, EffectivePlugin

__all__ = ["BranchSource", "CustomerBranchView"]


class BranchSource(Protocol):
    """What the view reads from the store (``BranchConfigStore`` is one)."""

    def effective(self, branch_code: str) -> EffectiveConfig: ...
    def settings_for(self, branch_code: str, plugin_id: str) -> Mapping[str, str]: ...
    def settings_variants(self, plugin_id: str) -> tuple[Mapping[str, str], ...]: ...


@dataclass(frozen=True, slots=True)
class _Plan:
    """An effective configuration split for fast per-request answers."""

    # On for every customer of the branch, whatever the installed version: a set lookup per request.
    open: frozenset[str]
    # On, but behind a rollout below 100 %, an allow-list or a version range: checked per request.
    gated: Mapping[str, EffectivePlugin]


_PLANS: dict[tuple[str, str], _Plan] = {}
_MAX_PLANS = 4096


def _plan_of(config: EffectiveConfig) -> _Plan:
    key = (config.branch, config.digest)
    plan = _PLANS.get(key)
    if plan is None:
        on = [config.plugins[pid] for pid in config.enabled_ids]
        plan = _Plan(
            open=frozenset(p.id for p in on if p.rollout >= 100 and not p.version),
            gated={p.id: p for p in on if p.rollout < 100 or p.version},
        )
        if len(_PLANS) >= _MAX_PLANS:  # configurations change rarely; never let the cache grow unbounded
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


class CustomerBranchView:
    """The branch layer as it applies to one customer of one branch, for the length of one request."""

    __slots__ = ("_config", "_customer", "_plan", "_source", "branch")

    def __init__(self, source: BranchSource, branch_code: str, customer_id: str) -> None:
        self._source = source
        self.branch = branch_code
        self._customer = customer_id
        self._config = source.effective(branch_code)
        self._plan = _plan_of(self._config)

    @property
    def digest(self) -> str:
        """The digest of the effective configuration in force for this request."""
        return self._config.digest

    def _gets(self, plugin_id: str) -> EffectivePlugin | None:
        """The plugin's configuration when it is on and this customer is in its rollout, else None."""
        plugin = self._plan.gated.get(plugin_id)
        return plugin if plugin is not None and plugin.applies_to(self._customer) else None

    def allows(self, plugin_id: str, version: str) -> bool:
        """True when the plugin (at its installed ``version``) runs for this customer."""
        if plugin_id in self._plan.open:
            return True
        plugin = self._gets(plugin_id)
        return plugin is not None and plugin.allows_version(version)

    def pins(self, plugin_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        """Slot id → plugin id → 1-based position, for those of ``plugin_ids`` this customer gets."""
        out: dict[str, dict[str, int]] = {}
        plugins = self._config.plugins
        for pid in plugin_ids:
            if pid in self._plan.open or self._gets(pid) is not None:
                for slot, position in plugins[pid].pin.items():
                    out.setdefault(slot, {})[pid] = position
        return out

    def settings(self, plugin_id: str) -> Mapping[str, str]:
        """The plugin's settings from the branch layer, secrets resolved: for its own context only."""
        return self._source.settings_for(self.branch, plugin_id)
