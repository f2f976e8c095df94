"""ReleaseVerifier: a release whose approved contents cannot be read must not stop the rest of the policy."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import msgspec
from fulcrum_core.plugins import LoadedPlugin, PluginPolicy
from fulcrum_core.registry_host.verify import ReleaseVerifier
from fulcrum_registry import ActiveRelease, NotFound, RegistryUnavailable
from fulcrum_sdk.manifest import Manifest

SCOPES = frozenset({"slot:home.notice"})


def _manifest(kit: Any, plugin_id: str) -> Manifest:
    manifest = kit.plugin(plugin_id, scopes=sorted(SCOPES)).MANIFEST
    return msgspec.convert(msgspec.to_builtins(manifest), Manifest)


def _loaded(manifest: Manifest) -> LoadedPlugin:
    dist = importlib.metadata.distribution("fulcrum-pension")  # any installed distribution: it has files
    return LoadedPlugin(
        id=manifest.id,
        manifest=manifest,
        plugin=object(),
        granted=SCOPES,
        settings={},
        hooks=frozenset(),
        kind=manifest.kind,
        dist=dist,
    )


class _Service:
    """release_contents fails for release 1 (its artifact is not on this host), works for release 2."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.failure: Exception | None = NotFound("artifact", "ab" * 32)

    def release_contents(self, release_id: int) -> dict[str, str]:
        self.calls.append(release_id)
        if release_id == 1 and self.failure is not None:
            raise self.failure
        raise AssertionError("only release 1 is verified in this test")


def test_an_unreadable_release_is_held_back_and_the_rest_of_the_policy_still_applies(kit: Any) -> None:
    """A release whose contents cannot be read does not run (fail closed) and names why, while another
    plugin's decision (here: suspended, so not running) still applies; the check is retried next time."""
    broken, other = _manifest(kit, "broken"), _manifest(kit, "other")
    loaded = {"broken": _loaded(broken), "other": _loaded(other)}
    active = {
        "broken": {
            broken.version: ActiveRelease(
                release_id=1,
                plugin_id="broken",
                version=broken.version,
                granted_scopes=SCOPES,
                publisher="test-bank",
                kind=broken.kind,
                manifest=broken,
            )
        }
    }
    policy = {
        "broken": PluginPolicy(active=True, granted_scopes=SCOPES),
        "other": PluginPolicy(active=False, granted_scopes=frozenset(), reason="suspended: incident"),
    }
    service = _Service()
    verifier = ReleaseVerifier(service)  # type: ignore[arg-type]
    verified = verifier.apply(policy, loaded, active)
    assert not verified["broken"].active
    assert "cannot verify" in verified["broken"].reason
    assert "artifact" in verified["broken"].reason
    assert not verified["broken"].quarantine  # not proven altered: held back, not quarantined
    assert verified["other"] == policy["other"]
    service.failure = RegistryUnavailable("database error: connection refused")
    assert "connection refused" in verifier.apply(policy, loaded, active)["broken"].reason
    assert service.calls == [1, 1]  # not cached: a passing registry hiccup is retried on the next poll
