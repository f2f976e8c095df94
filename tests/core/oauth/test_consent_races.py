"""Consents racing the authorization flow: a consent revoked while the code it came with is still to be
turned into tokens, and the consent form sent several times at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fulcrum_core.oauth import authorize
from fulcrum_core.oauth.plugin_clients import PluginClientPolicy, plugin_client_id, sync_plugin_clients
from fulcrum_core.oauth.refresh import FamilyRevoked, RefreshTokenStore
from fulcrum_core.oauth.server import oauth_server

from .conftest import CUSTOMER, ISSUER, REDIRECT, form_fields, pkce_pair, submit_consent

INTERNAL = "wealth-dept"
SCOPES = ["holdings:read", "slot:home.notice"]


@pytest.fixture
def internal_app(make_app: Callable[..., Any], kit: Any) -> tuple[Any, str]:
    """The app with a department plugin whose backend may run the authorization code flow; its secret."""
    plugin = kit.plugin(INTERNAL, kind="department", scopes=SCOPES, home_slot_offers=lambda ctx: [])
    app = make_app(plugin, oauth_dev_login=True)
    policy = PluginClientPolicy("department", frozenset(SCOPES), True, redirect_uris=(REDIRECT,))
    secret = sync_plugin_clients(app.runtime.db, {INTERNAL: policy})[0].secret
    assert secret
    return app, secret


def _authorize_url(challenge: str) -> str:
    """The plugin's authorization request for ``holdings:read`` with the PKCE ``challenge``."""
    query = {
        "response_type": "code",
        "client_id": plugin_client_id(INTERNAL),
        "redirect_uri": REDIRECT,
        "scope": "holdings:read",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return "/oauth/authorize?" + urlencode(query)


async def _authorized_code(app: Any, challenge: str) -> str:
    """The customer allows the plugin ``holdings:read`` on the consent page: the code it redirects with."""
    url = _authorize_url(challenge)
    transport = httpx.ASGITransport(app=app.client.app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
        redirect = await submit_consent(browser, url)
    assert redirect.status_code == 302, redirect.text
    return parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]


def _revoke_the_consent(app: Any) -> None:
    headers = {"Authorization": f"Bearer {app.token()}"}
    [consent] = app.client.get("/v1/consents", headers=headers).json()["consents"]
    deleted = app.client.delete(f"/v1/consents/{consent['id']}", headers=headers)
    assert deleted.status_code == 200, deleted.text


@pytest.mark.anyio
async def test_a_code_not_yet_redeemed_when_its_consent_is_revoked_mints_no_refresh_token(
    internal_app: tuple[Any, str],
) -> None:
    """The customer authorizes the plugin's backend, then deletes the consent before the backend has
    redeemed the code (it has 60 seconds). Deleting a consent revokes the plugin client's refresh-token
    families for the customer so that its backend cannot mint new access tokens (docs/oauth.md): the
    code's family goes too, and redeeming the code afterwards is ``invalid_grant``, not a 30-day
    refresh token that outlives the consent."""
    app, secret = internal_app
    verifier, challenge = pkce_pair()
    code = await _authorized_code(app, challenge)
    _revoke_the_consent(app)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.client.app), base_url=ISSUER) as http:
        r = await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "code_verifier": verifier,
            },
            auth=(plugin_client_id(INTERNAL), secret),
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant"


def test_a_redemption_in_flight_when_its_consent_is_revoked_gets_no_refresh_token(
    internal_app: tuple[Any, str],
) -> None:
    """The same race one step later: the backend's token request has redeemed the code (committed)
    but not yet stored the refresh token when the consent is deleted. Storing it must then fail
    (the token endpoint answers ``invalid_grant``), as it does for a family revoked by a replay."""
    app, _secret = internal_app
    _verifier, challenge = pkce_pair()
    code = asyncio.run(_authorized_code(app, challenge))
    server = oauth_server(app.runtime)
    redeemed = server.codes.redeem(code, plugin_client_id(INTERNAL))  # the token request, first half
    assert redeemed is not None
    _revoke_the_consent(app)
    with pytest.raises(FamilyRevoked):  # the token request, second half
        RefreshTokenStore(app.runtime.db).issue(
            family_id=redeemed.family_id,
            client_id=plugin_client_id(INTERNAL),
            subject=CUSTOMER,
            subject_kind="customer",
            scope="holdings:read",
        )


SUBMISSIONS = 4


@pytest.mark.anyio
async def test_a_consent_form_submitted_several_times_at_once_leaves_one_live_consent(
    internal_app: tuple[Any, str],
) -> None:
    """A double click on "allow" sends the same consent form again at once. Each submission
    supersedes the plugin's earlier consents and records a new one, so however they interleave
    exactly one consent is left live: the app lists one consent for the plugin, and one DELETE ends
    it (what test_authorizing_again_supersedes_the_earlier_consent checks one after the other). For a
    partner, a second live consent would keep its data access after the customer deleted the one.

    A barrier holds each submission, validated, until all have got there, so they record their
    consents together."""
    app, _secret = internal_app
    validated = authorize._validated
    barrier = threading.Barrier(SUBMISSIONS)

    def validated_together(*args: Any) -> Any:
        found = validated(*args)
        barrier.wait(timeout=10)
        return found

    url = _authorize_url(pkce_pair()[1])
    transport = httpx.ASGITransport(app=app.client.app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
        page = await browser.get(url)
        assert page.status_code == 200, page.text
        fields = {**form_fields(page.text), "customer": CUSTOMER, "decision": "allow"}
        with mock.patch.object(authorize, "_validated", validated_together):
            sent = (browser.post("/oauth/authorize", data=fields) for _ in range(SUBMISSIONS))
            answers = await asyncio.gather(*sent)
    assert [a.status_code for a in answers] == [302] * SUBMISSIONS
    listed = app.get("/v1/consents").json()["consents"]
    live = [c for c in listed if c["plugin_id"] == INTERNAL and c["status"] == "authorised"]
    assert len(live) == 1, listed
    assert len(listed) == SUBMISSIONS


async def _refresh(http: httpx.AsyncClient, token: str, secret: str) -> httpx.Response:
    return await http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        auth=(plugin_client_id(INTERNAL), secret),
    )


@pytest.mark.anyio
async def test_a_refresh_repeated_after_its_consent_was_revoked_gets_nothing(
    internal_app: tuple[Any, str],
) -> None:
    """The plugin's backend refreshes, the customer deletes the consent, and the backend's repeat of
    that refresh (a retry) arrives within the rotation grace period: ``invalid_grant``. The grace
    period lets a spent token be used again, never a revoked family."""
    app, secret = internal_app
    verifier, challenge = pkce_pair()
    code = await _authorized_code(app, challenge)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.client.app), base_url=ISSUER) as http:
        redeemed = await http.post(
            "/oauth/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                  "code_verifier": verifier},
            auth=(plugin_client_id(INTERNAL), secret),
        )
        assert redeemed.status_code == 200, redeemed.text
        spent = redeemed.json()["refresh_token"]
        first = await _refresh(http, spent, secret)
        assert first.status_code == 200, first.text
        assert (await _refresh(http, spent, secret)).status_code == 200  # a repeat within the grace period
        _revoke_the_consent(app)
        for token in (spent, first.json()["refresh_token"]):
            refused = await _refresh(http, token, secret)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"] == "invalid_grant"


def test_a_repeat_in_flight_when_its_consent_is_revoked_gets_no_refresh_token(
    internal_app: tuple[Any, str],
) -> None:
    """The same one step later: the repeat within the grace period has been accepted (committed) but
    its new refresh token not yet stored when the consent is deleted. Storing it must then fail, so
    the token endpoint answers ``invalid_grant``: the withdrawal wins over the grace period."""
    app, _secret = internal_app
    _verifier, challenge = pkce_pair()
    code = asyncio.run(_authorized_code(app, challenge))
    server = oauth_server(app.runtime)
    client = plugin_client_id(INTERNAL)
    redeemed = server.codes.redeem(code, client)
    assert redeemed is not None
    store = server.refresh_tokens
    token = store.issue(
        family_id=redeemed.family_id, client_id=client, subject=CUSTOMER, subject_kind="customer",
        scope="holdings:read",
    )
    assert store.rotate(token, client_id=client) is not None  # the first refresh
    repeat = store.rotate(token, client_id=client)  # its repeat, first half
    assert repeat is not None
    _revoke_the_consent(app)
    with pytest.raises(FamilyRevoked):  # its repeat, second half
        store.issue(
            family_id=repeat.family_id, client_id=client, subject=CUSTOMER, subject_kind="customer",
            scope="holdings:read",
        )
    assert store.rotate(token, client_id=client) is None
