"""The registry's decision for each installed plugin, as the ``PluginPolicy`` the plugin set applies.

A plugin runs only when the exact version installed here is an approved, not suspended release, and
then with the scopes the reviewers *granted* (never merely those requested). A plugin the registry
knows but whose installed version is not live gets an inactive entry with the reason, so even
development mode cannot run a suspended or rejected release. A plugin the registry has never heard of
is left out: the plugin set runs it only in development mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fulcrum_registry import ActiveRelease, LeftOut

from fulcrum_core.plugins import PluginPolicy

__all__ = ["plugin_policy", "refused_reason"]


def refused_reason(release: LeftOut) -> str:
    """Why an approved release does not run: its stored manifest fails today's rules, key and problem."""
    return (
        f"release {release.release_id} ({release.plugin_id} {release.version}) was approved, but its "
        f"manifest fails today's rules ({release.problem.key}: {release.problem.problem}), so it never runs; "
        "fix: suspend or retire it, and install a release that passes them"
    )


def plugin_policy(
    installed: Mapping[str, str],
    active: Mapping[str, Mapping[str, ActiveRelease]],
    states: Iterable[tuple[str, str, str]],
    suspended_publishers: Mapping[str, str] | None = None,
    left_out: Iterable[LeftOut] = (),
) -> dict[str, PluginPolicy]:
    """One policy per installed plugin the registry knows.

    ``installed`` maps plugin id → installed version; ``active`` is ``RegistryService.active_policy()``;
    ``states`` are ``(plugin id, version, state)`` of the registry's releases of installed plugins;
    ``suspended_publishers`` maps the id of an installed plugin whose publisher is suspended to that
    publisher (its releases are missing from ``active`` for that reason, which the reason then says);
    ``left_out`` are the approved releases missing from it because today's rules refuse their manifest.
    """
    suspended_publishers = suspended_publishers or {}
    refused = {(r.plugin_id, r.version): r for r in left_out}
    known: dict[str, dict[str, str]] = {}
    for plugin_id, version, release_state in states:
        known.setdefault(plugin_id, {})[version] = release_state
    policy: dict[str, PluginPolicy] = {}
    for plugin_id, version in sorted(installed.items()):
        live = active.get(plugin_id, {})
        release = live.get(version)
        if release is not None:
            policy[plugin_id] = PluginPolicy(active=True, granted_scopes=release.granted_scopes)
            continue
        if plugin_id not in known and plugin_id not in active:
            continue  # unknown to the registry: the plugin set decides (development mode only)
        state = known.get(plugin_id, {}).get(version)
        approved = ", ".join(sorted(live)) or "none"
        if plugin_id in suspended_publishers:
            reason = f"publisher {suspended_publishers[plugin_id]!r} is suspended in the registry"
        elif (plugin_id, version) in refused:
            reason = refused_reason(refused[plugin_id, version])
        elif state is None:
            reason = f"installed version {version} was never submitted to the registry (approved: {approved})"
        else:
            reason = f"installed version {version} is {state} in the registry (approved: {approved})"
        policy[plugin_id] = PluginPolicy(active=False, granted_scopes=frozenset(), reason=reason)
    return policy
