"""The host obeys the registry: only approved, not suspended releases run, with the scopes granted."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fulcrum_registry import RegistryService

from .conftest import CHECKLIST, ObeyingApp, publish

NOTICE = "home.notice/v1"


@pytest.fixture
def registry_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """``caplog`` wired to the ``fulcrum.registry`` logger directly (the host's logging may not propagate)."""
    logger = logging.getLogger("fulcrum.registry")
    logger.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def _wait_until(predicate: Callable[[], bool], *, timeout: float = 10.0) -> None:
    """Poll ``predicate`` every 20 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout} s")
        time.sleep(0.02)


def _notice_plugin(kit: Any, seen: list[frozenset[str]], plugin_id: str = "notices") -> Any:
    def offers(ctx: Any) -> Any:
        seen.append(frozenset(ctx.scopes))
        return [kit.offer("home.notice", f"{plugin_id}-n1")]

    return kit.plugin(
        plugin_id,
        scopes=["slot:home.notice"],
        optional=["location:city", "profile:basic"],
        home_slot_offers=offers,
    )


def _keys(body: dict[str, Any]) -> list[str]:
    return [item["key"] for item in body["slots"].get(NOTICE, [])]


def _approve(service: RegistryService, wheel: Path, grant: list[str] | None = None) -> int:
    release = publish(service, wheel)
    assert release.state == "in_review", release.failed_checks
    approved = service.approve(release.id, reviewer="bob", checklist=CHECKLIST, grant=grant)
    assert approved.state == "approved"
    return int(release.id)


def test_suspension_takes_effect_without_restart(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A running app stops calling a plugin once its release is suspended, and calls it again on resume."""
    seen: list[frozenset[str]] = []
    plugin = _notice_plugin(kit, seen)
    ids: list[int] = []
    app = obeying_app(plugin, before=lambda s: ids.append(_approve(s, wheel_for(plugin.MANIFEST))))
    assert _keys(app.home()) == ["notices-n1"]
    app.service.suspend(ids[0], actor="carol", reason="incident 42")
    _wait_until(lambda: _keys(app.home()) == [])
    assert "suspended" in app.runtime.plugins.inactive["notices"]
    assert not _client(app, "notices").active  # its backend's OAuth client is disabled too
    app.service.resume(ids[0], actor="dave", reason="fixed")
    _wait_until(lambda: _keys(app.home()) == ["notices-n1"])
    assert _client(app, "notices").active


def test_suspending_the_publisher_stops_its_plugin_and_says_why(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """The running app drops the plugin of a suspended publisher, names the publisher, and resumes it."""
    seen: list[frozenset[str]] = []
    plugin = _notice_plugin(kit, seen)
    app = obeying_app(plugin, before=lambda s: _approve(s, wheel_for(plugin.MANIFEST)))
    assert _keys(app.home()) == ["notices-n1"]
    app.service.suspend_publisher("test-bank", actor="carol", reason="incident 43")
    _wait_until(lambda: _keys(app.home()) == [])
    reason = app.runtime.plugins.inactive["notices"]
    assert "publisher 'test-bank' is suspended" in reason, reason
    assert not _client(app, "notices").active
    app.service.reinstate_publisher("test-bank", actor="dave", reason="cleared")
    _wait_until(lambda: _keys(app.home()) == ["notices-n1"])


def _client(app: Any, plugin_id: str) -> Any:
    from fulcrum_core.oauth.clients import ClientStore
    from fulcrum_core.oauth.plugin_clients import plugin_client_id

    client = ClientStore(app.runtime.db).get(plugin_client_id(plugin_id))
    assert client is not None, f"no OAuth client for {plugin_id}"
    return client


def test_an_approved_plugin_gets_a_client_with_exactly_its_grant(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Approval creates the plugin's OAuth client holding the granted scopes, not the requested ones,
    and named as the approved manifest names the plugin (the consent page shows it)."""
    seen: list[frozenset[str]] = []
    plugin = _notice_plugin(kit, seen)
    grant = ["slot:home.notice", "profile:basic"]
    obeying = obeying_app(plugin, before=lambda s: _approve(s, wheel_for(plugin.MANIFEST), grant=grant))
    client = _client(obeying, "notices")
    assert client.active
    assert client.scopes == frozenset(grant)
    name = plugin.MANIFEST.name
    assert (client.name_zh, client.name_en) == (name.zh_CN, name.en)


def test_a_narrower_grant_reaches_the_plugin_context(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """The plugin's context holds the scopes the reviewer granted, not every scope it requested."""
    seen: list[frozenset[str]] = []
    plugin = _notice_plugin(kit, seen)
    app = obeying_app(
        plugin,
        before=lambda s: _approve(s, wheel_for(plugin.MANIFEST), grant=["slot:home.notice", "profile:basic"]),
    )
    assert _keys(app.home()) == ["notices-n1"]
    assert seen[-1] == {"slot:home.notice", "profile:basic"}
    assert app.runtime.plugins.loaded["notices"].granted == {"slot:home.notice", "profile:basic"}


def test_a_plugin_unknown_to_the_registry_does_not_run(
    obeying_app: Callable[..., ObeyingApp], kit: Any, registry_log: pytest.LogCaptureFixture
) -> None:
    """An installed plugin the registry never heard of stays off, with a warning naming it."""
    seen: list[frozenset[str]] = []
    app = obeying_app(_notice_plugin(kit, seen))
    assert _keys(app.home()) == []
    assert seen == []
    assert app.runtime.plugins.inactive["notices"] == "not approved in the registry"
    assert "'notices' is installed but unknown to the registry" in registry_log.text


def test_dev_mode_runs_unknown_plugins_but_never_suspended_ones(
    obeying_app: Callable[..., ObeyingApp],
    kit: Any,
    wheel_for: Callable[..., Path],
    registry_log: pytest.LogCaptureFixture,
) -> None:
    """In development mode an unknown plugin runs (with a warning); a suspended one still does not."""
    seen: list[frozenset[str]] = []
    known, unknown = _notice_plugin(kit, seen, "known"), _notice_plugin(kit, seen, "stranger")

    def before(service: RegistryService) -> None:
        release_id = _approve(service, wheel_for(known.MANIFEST))
        service.suspend(release_id, actor="carol", reason="kill switch")

    app = obeying_app(known, unknown, before=before, dev_mode=True)
    assert _keys(app.home()) == ["stranger-n1"]
    assert "runs only because dev_mode is on" in registry_log.text
    assert "suspended" in app.runtime.plugins.inactive["known"]


def test_an_installed_version_that_is_not_approved_does_not_run(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """Approving 0.9.0 does not let the installed 1.0.0 run; the reason names both versions."""
    seen: list[frozenset[str]] = []
    plugin = _notice_plugin(kit, seen)
    app = obeying_app(plugin, before=lambda s: _approve(s, wheel_for(plugin.MANIFEST, version="0.9.0")))
    assert _keys(app.home()) == []
    reason = app.runtime.plugins.inactive["notices"]
    assert "1.0.0" in reason
    assert "0.9.0" in reason


def test_a_registry_outage_keeps_the_last_policy(
    obeying_app: Callable[..., ObeyingApp],
    kit: Any,
    wheel_for: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
    registry_log: pytest.LogCaptureFixture,
) -> None:
    """When the registry cannot be read the watcher logs it and the plugins that ran keep running."""
    import anyio.from_thread
    from fulcrum_core.registry_host import registry_of
    from fulcrum_registry import RegistryUnavailable

    seen: list[frozenset[str]] = []
    plugin = _notice_plugin(kit, seen)
    app = obeying_app(plugin, before=lambda s: _approve(s, wheel_for(plugin.MANIFEST)))
    watcher = registry_of(app.runtime).watcher
    assert watcher is not None

    def down() -> int:
        raise RegistryUnavailable("database error: connection refused")

    readable = app.service.policy_version
    monkeypatch.setattr(app.service, "policy_version", down)
    with anyio.from_thread.start_blocking_portal() as portal:
        assert portal.call(watcher.poll_once) is False
        # Once as an error while the same failure lasts (it was logged every poll), and its end said.
        assert portal.call(watcher.poll_once) is False
        errors = [r for r in registry_log.records if r.levelname == "ERROR"]
        assert [r.getMessage() for r in errors] == [
            "cannot read the registry policy (keeping the current one): database error: connection refused"
        ]
        assert _keys(app.home()) == ["notices-n1"]
        monkeypatch.setattr(app.service, "policy_version", readable)
        portal.call(watcher.poll_once)
        assert "the registry policy can be read again" in registry_log.text


def test_the_watcher_follows_the_registry_on_every_backend(
    database_url: str, tmp_path: Path, kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """On SQLite and PostgreSQL a refresh applies approval, then suspension, and skips no-op polls."""
    from fulcrum_core.app import build_runtime
    from fulcrum_core.registry_host import registry_of
    from fulcrum_core.settings import Settings

    seen: list[frozenset[str]] = []
    plugin = _notice_plugin(kit, seen)
    settings = Settings(
        state_dir=str(tmp_path / "state"),
        database_url=database_url,
        branches_dir=str(tmp_path / "no-branches"),
    )
    runtime = build_runtime(settings, extra_plugins=[plugin], load_entry_points=False, obey_registry=True)
    try:
        runtime.db.upgrade()
        host = registry_of(runtime)
        assert host.watcher is not None
        assert not runtime.plugins.is_active("notices")  # fail closed before the first read
        release_id = _approve(host.service, wheel_for(plugin.MANIFEST))
        assert host.watcher.refresh() is True
        assert runtime.plugins.is_active("notices")
        assert host.watcher.refresh() is False  # nothing moved: one cheap query, no re-read
        host.service.suspend(release_id, actor="carol", reason="drill")
        assert host.watcher.refresh() is True
        assert not runtime.plugins.is_active("notices")
    finally:
        runtime.db.dispose()


def test_a_partner_client_gets_the_keys_and_redirect_uris_of_its_approved_manifest(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """The [oauth] table the reviewer approved becomes the partner backend's client: active, signing
    with private_key_jwt against exactly those keys, returning only to those redirect URIs."""
    import msgspec
    from fulcrum_sdk.oauth_client import Jwks, OAuthClient
    from joserfc.jwk import ECKey

    reviewed = ECKey.generate_key("P-256", auto_kid=True).as_dict(private=False)
    seen: list[frozenset[str]] = []
    plugin = _notice_plugin(kit, seen, plugin_id="coupons")
    approved = msgspec.structs.replace(
        plugin.MANIFEST,
        kind="partner",
        publisher="city-coupons",
        oauth=OAuthClient(redirect_uris=("https://coupons.example/cb",), jwks=Jwks(keys=(reviewed,))),
    )
    plugin.MANIFEST = approved

    def approve(service: RegistryService) -> None:
        service.create_publisher(
            {"id": "city-coupons", "name": "城市优惠", "kind": "partner", "contact": "ops@coupons.example"},
            actor="platform",
        )
        release = publish(service, wheel_for(approved), publisher="city-coupons")
        assert release.state == "in_review", release.failed_checks
        service.approve(release.id, reviewer="bob", checklist=CHECKLIST)

    app = obeying_app(plugin, before=approve)
    client = _client(app, "coupons")
    assert client.active
    assert client.auth_method == "private_key_jwt"
    assert client.jwks == {"keys": [reviewed]}
    assert client.redirect_uris == ("https://coupons.example/cb",)
    assert "authorization_code" in client.grant_types


def test_an_installed_copy_whose_manifest_differs_from_the_approved_one_is_quarantined(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """The same version with other OAuth keys than the reviewed manifest never runs: it is quarantined
    with a reason naming the manifest field that differs. Its client (shared by every host, so made from
    the registry alone) holds the reviewed keys, never the installed copy's."""
    import msgspec
    from fulcrum_sdk.oauth_client import Jwks, OAuthClient
    from joserfc.jwk import ECKey

    reviewed, smuggled = (ECKey.generate_key("P-256", auto_kid=True).as_dict(private=False) for _ in range(2))
    plugin = _notice_plugin(kit, [], plugin_id="coupons")
    approved = msgspec.structs.replace(
        plugin.MANIFEST, kind="partner", publisher="city-coupons",
        oauth=OAuthClient(redirect_uris=("https://coupons.example/cb",), jwks=Jwks(keys=(reviewed,))),
    )
    plugin.MANIFEST = msgspec.structs.replace(
        approved, oauth=msgspec.structs.replace(approved.oauth, jwks=Jwks(keys=(smuggled,)))
    )

    def approve(service: RegistryService) -> None:
        service.create_publisher(
            {"id": "city-coupons", "name": "城市优惠", "kind": "partner", "contact": "ops@coupons.example"},
            actor="platform",
        )
        release = publish(service, wheel_for(approved), publisher="city-coupons")
        service.approve(release.id, reviewer="bob", checklist=CHECKLIST)

    app = obeying_app(plugin, before=approve)
    plugins = app.runtime.plugins
    assert not plugins.is_active("coupons")
    assert "'oauth.jwks.keys'" in plugins.quarantined["coupons"]
    assert plugins.inactive["coupons"].startswith("quarantined: ")
    from fulcrum_core.oauth.clients import ClientStore
    from fulcrum_core.oauth.plugin_clients import plugin_client_id

    client = ClientStore(app.runtime.db).get(plugin_client_id("coupons"))
    assert client is not None
    assert client.jwks == {"keys": [reviewed]}
