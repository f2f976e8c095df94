"""Only the approved release runs: an approved version's installed copy must be the reviewed one.

For each plugin the policy would run, ``ReleaseVerifier`` compares the installed manifest with the
registry's snapshot and the installed files with the approved wheel's contents; a difference turns
the decision into a quarantine naming the field or file. The plugin's kind comes from the registry
(the publisher's kind). Verdicts are kept per release, so files are hashed once per process. A release
whose approved contents cannot be read now (artifact missing, registry unreachable) is held back, not
cached, and named in ``unverified``: the watcher checks it again on a later poll (on its backoff); the
rest of the policy (suspensions too) still applies.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Mapping

from fulcrum_registry import ActiveRelease, RegistryError, RegistryService
from fulcrum_sdk.manifest import Manifest

from fulcrum_core.integrity import files_mismatch, manifest_mismatch
from fulcrum_core.plugins import LoadedPlugin, PluginPolicy

__all__ = ["ReleaseVerifier"]

log = logging.getLogger("fulcrum.registry")


class ReleaseVerifier:
    """Checks installed plugins against their approved releases; one per worker, verdicts cached."""

    def __init__(self, service: RegistryService) -> None:
        self.service = service
        self._verdicts: dict[tuple[str, int], str | None] = {}
        # Plugins the last ``apply`` held back because their release could not be read: asked again.
        self.unverified: frozenset[str] = frozenset()

    def problem(self, plugin: LoadedPlugin, release: ActiveRelease) -> str | None:
        """Why ``plugin`` as installed is not ``release`` (None: it is); computed once per release."""
        return self.verdict(plugin.id, plugin.manifest, plugin.dist, release)

    def verdict(
        self,
        plugin_id: str,
        manifest: Manifest,
        dist: importlib.metadata.Distribution | None,
        release: ActiveRelease,
    ) -> str | None:
        """``problem`` for a plugin not imported yet: its id, installed manifest and distribution."""
        key = (plugin_id, release.release_id)
        if key not in self._verdicts:
            self._verdicts[key] = self._check(manifest, dist, release)
            if self._verdicts[key] is not None:
                log.error("plugin %r quarantined: %s", plugin_id, self._verdicts[key])
        return self._verdicts[key]

    def _check(
        self, manifest: Manifest, dist: importlib.metadata.Distribution | None, release: ActiveRelease
    ) -> str | None:
        where = f"approved release {release.release_id} ({release.version})"
        if release.manifest is None:
            return f"the registry holds no manifest for {where}"
        field = manifest_mismatch(manifest, release.manifest)
        if field is not None:
            return (
                f"installed fulcrum-plugin.toml differs from {where} at {field!r}; "
                "fix: install the approved wheel"
            )
        if release.kind and manifest.kind != release.kind:
            return (
                f"installed manifest says kind {manifest.kind!r} but publisher "
                f"{release.publisher!r} is a {release.kind!r}; fix: install the approved wheel"
            )
        if dist is None:
            return None  # handed in as an object (tests): no installed files to compare
        problem = files_mismatch(dist, self.service.release_contents(release.release_id))
        if problem is not None:
            return f"installed files are not {where}: {problem}; fix: reinstall the approved wheel"
        return None

    def apply(
        self,
        policy: Mapping[str, PluginPolicy],
        loaded: Mapping[str, LoadedPlugin],
        active: Mapping[str, Mapping[str, ActiveRelease]],
    ) -> dict[str, PluginPolicy]:
        """``policy`` with each running plugin verified: its kind from the registry, or quarantined."""
        verified = dict(policy)
        unverified: set[str] = set()
        for pid, decision in policy.items():
            plugin = loaded.get(pid)
            release = active.get(pid, {}).get(plugin.version) if plugin is not None else None
            if plugin is None or release is None or not decision.active:
                continue
            kind = release.kind
            try:
                problem = self.problem(plugin, release)
            except (RegistryError, OSError) as exc:
                # Unverified: fail closed for this plugin only; the watcher asks again on a later poll.
                unverified.add(pid)
                log.error("plugin %r held back: cannot verify it against its release: %s", pid, exc)
                verified[pid] = PluginPolicy(
                    active=False,
                    granted_scopes=frozenset(),
                    reason=f"cannot verify the installed copy against release {release.release_id}: {exc}",
                    kind=kind,
                )
                continue
            verified[pid] = (
                PluginPolicy(
                    active=False, granted_scopes=frozenset(), reason=problem, kind=kind, quarantine=problem
                )
                if problem is not None
                else PluginPolicy(active=True, granted_scopes=decision.granted_scopes, kind=kind)
            )
        self.unverified = frozenset(unverified)
        return verified
