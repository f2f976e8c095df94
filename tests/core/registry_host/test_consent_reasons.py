"""The consent page reads a plugin's name and scope reasons from the registry's newest approved
release, the same on every host, rather than from the copy installed on the host serving it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import msgspec
import pytest
from fulcrum_core.oauth.plugin_clients import PluginClientPolicy, sync_plugin_clients
from fulcrum_core.registry_host.host import watcher_of
from fulcrum_registry import RegistryService, RegistryUnavailable
from fulcrum_sdk.manifest import Manifest, ScopeRequests
from fulcrum_sdk.models import LocalizedText
from fulcrum_sdk.oauth_client import Jwks, OAuthClient
from joserfc.jwk import ECKey

from .conftest import CHECKLIST, ObeyingApp, publish

REDIRECT = "https://coupons.example/cb"
KEY = ECKey.generate_key("P-256", auto_kid=True).as_dict(private=False)


def _manifest(kit: Any, version: str, reason: str, name_en: str) -> Manifest:
    """The coupons partner's manifest at ``version``: ``reason`` for its one scope, named ``name_en``."""
    base = kit.manifest("coupons", hooks=["home_slot_offers"], kind="partner", scopes=["slot:home.notice"])
    return msgspec.structs.replace(
        base,
        version=version,
        publisher="city-coupons",
        name=LocalizedText(zh_CN=f"城市优惠 {version}", en=name_en),
        scopes=ScopeRequests(required={"slot:home.notice": reason}),
        oauth=OAuthClient(redirect_uris=(REDIRECT,), jwks=Jwks(keys=(KEY,))),
    )


def _installed(kit: Any, manifest: Manifest) -> Any:
    """The coupons plugin as installed on this host, with ``manifest``."""
    plugin = kit.plugin(
        "coupons", kind="partner", scopes=["slot:home.notice"], home_slot_offers=lambda ctx: []
    )
    plugin.MANIFEST = manifest
    return plugin


def _approver(wheel_for: Callable[..., Path], *manifests: Manifest) -> Callable[[RegistryService], None]:
    def approve(service: RegistryService) -> None:
        service.create_publisher(
            {"id": "city-coupons", "name": "城市优惠", "kind": "partner", "contact": "ops@coupons.example"},
            actor="platform",
        )
        for manifest in manifests:
            release = publish(service, wheel_for(manifest), publisher="city-coupons")
            assert release.state == "in_review", release.failed_checks
            service.approve(release.id, reviewer="bob", checklist=CHECKLIST)

    return approve


def _page(app: ObeyingApp) -> str:
    query = {
        "response_type": "code", "client_id": "plugin-coupons", "redirect_uri": REDIRECT,
        "scope": "slot:home.notice", "state": "s", "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    page = app.client.get("/oauth/authorize?" + urlencode(query))
    assert page.status_code == 200, page.text
    return str(page.text)


@pytest.mark.anyio
def test_during_a_rolling_upgrade_the_page_shows_the_newest_approved_release(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A host still running 1.0.0 showed 1.0.0's reason and name while 1.1.0, approved with other
    words, rolled out: the customer reads what reviewers approved for the release being consented to."""
    old = _manifest(kit, "1.0.0", "shows your old coupons", "City coupons (old)")
    new = _manifest(kit, "1.1.0", "shows coupons for your city", "City coupons")
    plugin = _installed(kit, old)
    app = obeying_app(plugin, before=_approver(wheel_for, old, new), oauth_dev_login=True)
    assert app.runtime.plugins.is_active("coupons")  # the installed 1.0.0 runs: it is approved too
    page = _page(app)
    assert "shows coupons for your city" in page
    assert "shows your old coupons" not in page
    assert "<strong>城市优惠 1.1.0</strong>" in page
    assert "(City coupons)" in page


@pytest.mark.anyio
def test_a_host_without_the_plugin_shows_the_approved_reasons(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A host that does not have the plugin installed showed only the platform's scope text; it shows
    the approved manifest's name and reason like any other host."""
    approved = _manifest(kit, "2.0.0", "shows coupons for your city", "City coupons")
    app = obeying_app(before=_approver(wheel_for, approved), oauth_dev_login=True)
    assert "coupons" not in app.runtime.plugins.loaded
    # The client another host's watcher keeps in step with the registry (the database is shared).
    policy = PluginClientPolicy(
        "partner", frozenset({"slot:home.notice"}), True, jwks={"keys": [KEY]}, redirect_uris=(REDIRECT,),
        name=("城市优惠 2.0.0", "City coupons"),
    )
    sync_plugin_clients(app.runtime.db, {"coupons": policy})
    page = _page(app)
    assert "shows coupons for your city" in page
    assert "<strong>城市优惠 2.0.0</strong>" in page


@pytest.mark.anyio
def test_without_an_approved_release_the_installed_manifest_is_shown(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """A plugin the registry has no approved release of (dev mode runs it) falls back to its installed
    manifest, as before."""
    installed = _manifest(kit, "0.1.0", "a reason from the working copy", "City coupons (dev)")
    plugin = _installed(kit, installed)
    app = obeying_app(plugin, oauth_dev_login=True, dev_mode=True)
    policy = PluginClientPolicy(
        "partner", frozenset({"slot:home.notice"}), True, jwks={"keys": [KEY]}, redirect_uris=(REDIRECT,),
    )
    sync_plugin_clients(app.runtime.db, {"coupons": policy})
    page = _page(app)
    assert "a reason from the working copy" in page


@pytest.mark.anyio
def test_a_registry_that_cannot_be_read_falls_back_to_the_installed_manifest(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path]
) -> None:
    """The page is still served when the registry cannot be read, with the installed copy's words."""
    installed = _manifest(kit, "1.0.0", "shows your old coupons", "City coupons (old)")
    approve = _approver(wheel_for, installed)
    app = obeying_app(_installed(kit, installed), before=approve, oauth_dev_login=True)
    watcher = watcher_of(app.runtime)
    assert watcher is not None
    outage = RegistryUnavailable("the database is not answering")
    with mock.patch.object(watcher.service, "approved_manifest", side_effect=outage):
        assert "shows your old coupons" in _page(app)


@pytest.mark.anyio
def test_an_approved_name_or_reason_that_would_read_reversed_is_not_shown(
    obeying_app: Callable[..., ObeyingApp], kit: Any, wheel_for: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A release approved before display text was checked may hold a bidi override in its name or a
    reason; the registry refuses such a submission now, and the consent page does not show those words
    either (it logs why): it falls back to the installed manifest, which passed the check when loaded."""
    installed = _manifest(kit, "1.0.0", "shows your old coupons", "City coupons (old)")
    approve = _approver(wheel_for, installed)
    app = obeying_app(_installed(kit, installed), before=approve, oauth_dev_login=True)
    watcher = watcher_of(app.runtime)
    assert watcher is not None
    spoofed = _manifest(kit, "1.1.0", "shows coupons \u202eylno", "City coupons")
    logger = logging.getLogger("fulcrum.oauth")  # the app's logging setup keeps it from the root
    logger.addHandler(caplog.handler)
    try:
        with mock.patch.object(watcher.service, "approved_manifest", return_value=spoofed):
            page = _page(app)
    finally:
        logger.removeHandler(caplog.handler)
    assert "\u202e" not in page
    assert "ylno" not in page
    assert "shows your old coupons" in page  # the installed copy, which passed the check when loaded
    said = "scopes.required.slot:home.notice: U+202E RIGHT-TO-LEFT OVERRIDE"
    assert any(said in r.getMessage() for r in caplog.records)
