"""Layering: HQ file + one branch file → the branch's effective plugin configuration, computed once.

Rules (validated in ``validate.py``; this module assumes valid input and never raises on it):

- A plugin listed in a file is on unless ``enabled = false``; a branch entry that omits ``enabled``
  keeps HQ's choice. Every other field a branch sets overrides HQ's; settings and pins merge by key.
- A mandatory HQ plugin stays on with HQ's version, rollout and allow-list whatever the branch says;
  the branch may only move it (``pin``) and tune its ``settings``.
- Each effective value records its source: ``hq``, ``branch`` or ``default``.

The result is a frozen Struct; the host keeps it until the files change and reads it per request.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Generic, Literal, TypeVar

import msgspec
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from fulcrum_core.branches.model import BranchFile, BranchPluginEntry, HqFile, HqPluginEntry, SettingValue
from fulcrum_core.branches.rollout import in_rollout
from fulcrum_core.branches.secrets import redact

__all__ = [
    "EffectiveConfig",
    "EffectivePlugin",
    "RedactedConfig",
    "RedactedPlugin",
    "Source",
    "Sourced",
    "layer",
]

Source = Literal["hq", "branch", "default"]
_T = TypeVar("_T")


@functools.lru_cache(maxsize=256)
def _specifier(text: str) -> SpecifierSet | None:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        return None


@functools.lru_cache(maxsize=1024)
def _allows(spec_text: str, version: str) -> bool:
    """Whether ``version`` is in ``spec_text``; cached because it is asked per request and plugin."""
    spec = _specifier(spec_text)
    try:
        return spec is not None and spec.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


class Sourced(msgspec.Struct, Generic[_T], frozen=True):
    """A value and where it came from, for the admin view."""

    value: _T
    source: Source


class RedactedPlugin(msgspec.Struct, frozen=True, kw_only=True):
    """One plugin's effective configuration as staff may see it: secrets shown by reference only."""

    id: str
    enabled: Sourced[bool]
    mandatory: bool
    version: Sourced[str]
    rollout: Sourced[int]
    allow: Sourced[list[str]]
    pin: dict[str, Sourced[int]]
    settings: dict[str, Sourced[SettingValue]]


class RedactedConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A branch's effective configuration for ``GET /admin/v1/branches/{code}/effective``."""

    branch: str
    digest: str
    plugins: list[RedactedPlugin]


class EffectivePlugin(msgspec.Struct, frozen=True, kw_only=True):
    """One plugin's effective configuration for one branch. Treat the dicts as read-only."""

    id: str
    enabled: bool
    mandatory: bool = False
    # PEP 440 range the installed release must satisfy; "" means any approved release.
    version: str = ""
    rollout: int = 100
    allow: frozenset[str] = frozenset()
    pin: dict[str, int] = {}
    settings: dict[str, SettingValue] = {}
    # Where each value came from: "enabled", "version", "rollout", "allow"; then per pin and setting.
    sources: dict[str, Source] = {}
    pin_sources: dict[str, Source] = {}
    setting_sources: dict[str, Source] = {}

    def applies_to(self, customer_id: str) -> bool:
        """True when this customer gets the plugin: it is on, and they are in its rollout."""
        return self.enabled and in_rollout(customer_id, self.id, self.rollout, self.allow)

    def allows_version(self, version: str) -> bool:
        """True when ``version`` satisfies the effective range (always, when no range is set)."""
        return not self.version or _allows(self.version, version)

    def redacted(self) -> RedactedPlugin:
        """The staff view of this plugin, secrets shown as their reference or ``***``."""
        src = self.sources
        return RedactedPlugin(
            id=self.id,
            enabled=Sourced(self.enabled, src.get("enabled", "default")),
            mandatory=self.mandatory,
            version=Sourced(self.version, src.get("version", "default")),
            rollout=Sourced(self.rollout, src.get("rollout", "default")),
            allow=Sourced(sorted(self.allow), src.get("allow", "default")),
            pin={slot: Sourced(pos, self.pin_sources[slot]) for slot, pos in sorted(self.pin.items())},
            settings={
                key: Sourced(redact(key, value), self.setting_sources[key])
                for key, value in sorted(self.settings.items())
            },
        )


class EffectiveConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Every plugin HQ or the branch names, as it applies to the branch's customers."""

    branch: str
    plugins: dict[str, EffectivePlugin]
    # Ids of the plugins that are on (before rollout), sorted: the per-request starting set.
    enabled_ids: tuple[str, ...]
    # sha256 of the effective content: equal digests mean nothing changed for this branch.
    digest: str

    def plugins_for(self, customer_id: str) -> tuple[str, ...]:
        """Ids of the plugins this customer of the branch gets (on, and in rollout or allow-listed)."""
        plugins = self.plugins
        return tuple(pid for pid in self.enabled_ids if plugins[pid].applies_to(customer_id))

    def redacted(self) -> RedactedConfig:
        """The staff view: every plugin with the source of each value, secrets redacted."""
        return RedactedConfig(
            branch=self.branch,
            digest=self.digest,
            plugins=[self.plugins[pid].redacted() for pid in sorted(self.plugins)],
        )


def _merge(plugin_id: str, hq: HqPluginEntry | None, branch: BranchPluginEntry | None) -> EffectivePlugin:
    mandatory = hq.mandatory if hq is not None else False
    # An HQ entry is on unless it says otherwise; a plugin HQ does not name is off until a branch entry
    # says ``enabled = true`` (a pin or a rollout alone switched it on for the whole branch).
    enabled, version, rollout, allow = hq is not None, "", 100, frozenset[str]()
    sources: dict[str, Source] = dict.fromkeys(("enabled", "version", "rollout", "allow"), "default")
    pin: dict[str, int] = {}
    pin_sources: dict[str, Source] = {}
    settings: dict[str, SettingValue] = {}
    setting_sources: dict[str, Source] = {}
    layers: tuple[tuple[Source, BranchPluginEntry | None], ...] = (("hq", hq), ("branch", branch))
    for source, entry in layers:
        if entry is None:
            continue
        if not (source == "branch" and mandatory):  # HQ fixes these for mandatory plugins
            if isinstance(entry.enabled, bool):
                enabled, sources["enabled"] = entry.enabled, source
            if isinstance(entry.version, str):
                version, sources["version"] = entry.version, source
            if isinstance(entry.rollout, int):
                rollout, sources["rollout"] = entry.rollout, source
            if isinstance(entry.allow, tuple):
                allow, sources["allow"] = frozenset(entry.allow), source
        for slot, position in entry.pin.items():
            pin[slot], pin_sources[slot] = position, source
        for key, value in entry.settings.items():
            settings[key], setting_sources[key] = value, source
    return EffectivePlugin(
        id=plugin_id,
        enabled=enabled or mandatory,
        mandatory=mandatory,
        version=version,
        rollout=rollout,
        allow=allow,
        pin=pin,
        settings=settings,
        sources=sources,
        pin_sources=pin_sources,
        setting_sources=setting_sources,
    )


def layer(code: str, hq: HqFile, branch: BranchFile | None) -> EffectiveConfig:
    """The effective configuration of branch ``code``: ``hq`` overlaid with ``branch`` (None = no file)."""
    branch_plugins = branch.plugins if branch is not None else {}
    plugins = {
        pid: _merge(pid, hq.plugins.get(pid), branch_plugins.get(pid))
        for pid in sorted(set(hq.plugins) | set(branch_plugins))
    }
    digest = hashlib.sha256(msgspec.json.encode(plugins, order="deterministic")).hexdigest()
    return EffectiveConfig(
        branch=code,
        plugins=plugins,
        enabled_ids=tuple(pid for pid, p in plugins.items() if p.enabled),
        digest=digest,
    )
