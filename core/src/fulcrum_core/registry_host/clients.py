"""The plugin OAuth clients' policy, from the registry alone, the same on every host of a fleet.

The clients live in the shared database, so every host must ask for the same thing: a host that built
the policy from the plugins installed on it disabled the client of a plugin it lacked (a rolling
install), or narrowed it to its older version's grant (a rolling upgrade), and the hosts that had the
plugin turned it back on, each time revoking the plugin's refresh tokens. Every plugin with an
approved, not suspended release of a publisher not suspended gets its client as the newest such
release says (kind, granted scopes, keys, redirect URIs, name); every other plugin's client is disabled.
"""

from __future__ import annotations

from collections.abc import Mapping

from fulcrum_registry import ActiveRelease
from packaging.version import InvalidVersion, Version

from fulcrum_core.oauth.plugin_clients import PluginClientPolicy

__all__ = ["client_policy"]


def _newest(versions: Mapping[str, ActiveRelease]) -> ActiveRelease | None:
    """The release of the highest version (None when none parses: the registry checks them on submit)."""
    parsed: list[tuple[Version, ActiveRelease]] = []
    for version, release in versions.items():
        try:
            parsed.append((Version(version), release))
        except InvalidVersion:
            continue
    return max(parsed, key=lambda item: item[0])[1] if parsed else None


def client_policy(active: Mapping[str, Mapping[str, ActiveRelease]]) -> dict[str, PluginClientPolicy]:
    """Plugin id → its client's policy, for every plugin in ``active`` (``RegistryService.active_policy()``,
    which holds only approved releases, none suspended, no suspended publisher's), whether or not this
    host has it installed; pass it to ``sync_plugin_clients(..., complete=True)``."""
    clients: dict[str, PluginClientPolicy] = {}
    for plugin_id, versions in sorted(active.items()):
        release = _newest(versions)
        if release is None or release.kind is None:
            continue  # no kind the registry vouches for: its client stays disabled
        oauth, manifest = release.oauth, release.manifest
        clients[plugin_id] = PluginClientPolicy(
            kind=release.kind,  # the approved publisher's kind, never an installed manifest's
            scopes=frozenset(release.granted_scopes),
            active=True,
            jwks=oauth.jwks.as_dict() if oauth is not None and oauth.jwks is not None else None,
            redirect_uris=oauth.redirect_uris if oauth is not None else (),
            name=(manifest.name.zh_CN, manifest.name.en) if manifest is not None else None,
        )
    return clients
