"""Hosts sharing one database agree on the plugin OAuth clients, whatever each has installed.

A host built the clients' policy from its own installed plugins: during a rolling install the host
without the plugin disabled its client and the others enabled it again, and during a rolling upgrade
the hosts on the older version narrowed it; each flip revoked the plugin's refresh tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_registry import ActiveRelease, RegistryService

from .conftest import CHECKLIST, publish

OLD_GRANT = frozenset({"slot:home.notice"})
NEW_GRANT = frozenset({"slot:home.notice", "profile:basic"})
CLIENT = "plugin-notices"


def _notices(kit: Any, version: str = "1.0.0") -> Any:
    plugin = kit.plugin(
        "notices",
        scopes=["slot:home.notice"],
        optional=["profile:basic"],
        home_slot_offers=lambda ctx: [kit.offer("home.notice", "n1")],
    )
    plugin.MANIFEST = msgspec.structs.replace(plugin.MANIFEST, version=version)
    return plugin


def _approve(service: RegistryService, wheel: Path, grant: frozenset[str]) -> int:
    release = publish(service, wheel)
    assert release.state == "in_review", release.failed_checks
    service.approve(release.id, reviewer="bob", checklist=CHECKLIST, grant=sorted(grant))
    return int(release.id)


class Host:
    """One host of the fleet: its runtime and registry watcher."""

    def __init__(self, runtime: Any) -> None:
        from fulcrum_core.registry_host import registry_of

        self.runtime = runtime
        self.registry = registry_of(runtime)
        assert self.registry.watcher is not None
        self.watcher = self.registry.watcher

    def sync(self) -> None:
        """One poll that re-reads the registry (as after any registry change)."""
        assert self.watcher.refresh(force=True) is True


@pytest.fixture
def fleet(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """``fleet(*plugins)``: a host with these plugins installed, on the database every host shares."""
    from fulcrum_core.app import build_runtime
    from fulcrum_core.settings import Settings

    settings = Settings(
        state_dir=str(tmp_path / "state"), database_url=database_url, branches_dir=str(tmp_path / "none")
    )
    runtimes: list[Any] = []

    def host(*plugins: object) -> Host:
        runtime = build_runtime(settings, extra_plugins=plugins, load_entry_points=False, obey_registry=True)
        runtimes.append(runtime)
        if len(runtimes) == 1:
            runtime.db.upgrade()
        return Host(runtime)

    yield host
    for runtime in runtimes:
        runtime.db.dispose()


def _client(host: Host) -> Any:
    from fulcrum_core.oauth.clients import ClientStore

    client = ClientStore(host.runtime.db).get(CLIENT)
    assert client is not None
    return client


def _refresh_token(host: Host) -> str:
    from fulcrum_core.oauth.refresh import RefreshTokenStore

    return RefreshTokenStore(host.runtime.db).issue(
        family_id=None, client_id=CLIENT, subject="pairwise-1", subject_kind="customer",
        scope=" ".join(sorted(NEW_GRANT)),
    )


def _revoked(host: Host, token: str) -> bool:
    from fulcrum_core.oauth.refresh import RefreshTokenStore

    record = RefreshTokenStore(host.runtime.db).find(token)
    assert record is not None
    return record.revoked_at is not None


def _steady(hosts: list[Host], order: list[int], token: str, scopes: frozenset[str]) -> None:
    """Each host syncs in ``order``; after every sync the client is active with ``scopes``, ``token`` live."""
    for index in order:
        hosts[index].sync()
        client = _client(hosts[index])
        assert client.active, f"host {index} disabled the client"
        assert client.scopes == scopes, f"host {index} set {sorted(client.scopes)}"
        assert not _revoked(hosts[index], token), f"host {index}'s sync revoked the refresh token"


def test_a_host_without_the_plugin_leaves_its_client_alone(
    fleet: Callable[..., Host], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """During a rolling install the host lacking the plugin keeps its client active with its grant,
    in either order and again and again, and no sync revokes the plugin's refresh tokens."""
    plugin = _notices(kit)
    lacking, having = fleet(), fleet(plugin)
    _approve(having.registry.service, wheel_for(plugin.MANIFEST), NEW_GRANT)
    lacking.sync()  # the host without the plugin creates its client already
    assert _client(lacking).active
    assert _client(lacking).scopes == NEW_GRANT
    token = _refresh_token(having)
    _steady([lacking, having], [1, 0, 1, 0, 0, 1], token, NEW_GRANT)
    assert having.runtime.plugins.is_active("notices")
    assert not lacking.runtime.plugins.is_active("notices")  # not installed there: nothing to run


def test_hosts_on_two_approved_versions_agree_on_the_newest_grant(
    fleet: Callable[..., Host], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """During a rolling upgrade whose new version was granted more, the hosts still on the old one
    neither narrow the client to the old grant nor revoke its refresh tokens."""
    old, new = _notices(kit, "1.0.0"), _notices(kit, "1.1.0")
    hosts = [fleet(old), fleet(new)]
    service = hosts[0].registry.service
    _approve(service, wheel_for(old.MANIFEST), OLD_GRANT)
    _approve(service, wheel_for(new.MANIFEST), NEW_GRANT)
    hosts[1].sync()
    token = _refresh_token(hosts[1])
    _steady(hosts, [0, 1, 0, 0, 1, 1, 0], token, NEW_GRANT)
    # Each host runs its own installed version with that version's grant.
    assert hosts[0].runtime.plugins.loaded["notices"].granted == OLD_GRANT
    assert hosts[1].runtime.plugins.loaded["notices"].granted == NEW_GRANT


@pytest.mark.parametrize("by", [0, 1], ids=["by-the-host-without-it", "by-the-host-with-it"])
def test_a_suspended_plugin_loses_its_client_whichever_host_syncs(
    by: int, fleet: Callable[..., Host], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Suspending the release (or its publisher) disables the client and revokes its refresh tokens on
    the next sync of any host; resuming enables it again."""
    plugin = _notices(kit)
    hosts = [fleet(), fleet(plugin)]
    service = hosts[1].registry.service
    release = _approve(service, wheel_for(plugin.MANIFEST), NEW_GRANT)
    hosts[1 - by].sync()
    token = _refresh_token(hosts[1])
    service.suspend(release, actor="carol", reason="incident 7")
    hosts[by].sync()
    assert not _client(hosts[by]).active
    assert _revoked(hosts[by], token)
    service.resume(release, actor="dave", reason="fixed")
    hosts[by].sync()
    assert _client(hosts[by]).active
    service.suspend_publisher("test-bank", actor="carol", reason="incident 8")
    hosts[by].sync()
    assert not _client(hosts[by]).active


def test_suspending_the_newest_version_falls_back_to_the_previous_grant(
    fleet: Callable[..., Host], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A rollback: with the newest release suspended the client holds the previous approved one's grant
    (a narrowing, so its refresh tokens are revoked), on every host alike."""
    old, new = _notices(kit, "1.0.0"), _notices(kit, "1.1.0")
    hosts = [fleet(old), fleet(new)]
    service = hosts[0].registry.service
    _approve(service, wheel_for(old.MANIFEST), OLD_GRANT)
    newest = _approve(service, wheel_for(new.MANIFEST), NEW_GRANT)
    hosts[0].sync()
    token = _refresh_token(hosts[0])
    service.suspend(newest, actor="carol", reason="bad upgrade")
    for host in [*hosts, *hosts]:
        host.sync()
        assert _client(host).active
        assert _client(host).scopes == OLD_GRANT
    assert _revoked(hosts[0], token)


def _release(version: str, kind: Any = "department", scopes: frozenset[str] = OLD_GRANT) -> ActiveRelease:
    return ActiveRelease(
        release_id=1, plugin_id="notices", version=version, granted_scopes=scopes, kind=kind
    )


def test_the_client_policy_takes_the_highest_version_and_needs_a_kind() -> None:
    """Versions compare as versions (1.10 after 1.9); a plugin without a kind the registry vouches for
    gets no policy entry, so ``complete=True`` leaves its client disabled."""
    from fulcrum_core.registry_host.clients import client_policy

    policy = client_policy({
        "notices": {"1.9.0": _release("1.9.0"), "1.10.0": _release("1.10.0", scopes=NEW_GRANT)},
        "orphan": {"1.0.0": _release("1.0.0", kind=None)},
    })
    assert set(policy) == {"notices"}
    assert policy["notices"].scopes == NEW_GRANT
    assert policy["notices"].kind == "department"
    assert policy["notices"].active
