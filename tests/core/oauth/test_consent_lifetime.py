"""A plugin's refresh tokens live no longer than the customer's consent they rest on, and every
authorization a customer gives a plugin (customer data or actions) is a consent they can see and revoke."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fulcrum_core.data.models.consent import ConsentRow
from fulcrum_core.data.models.oauth_refresh_token import OAuthRefreshTokenRow
from fulcrum_core.data.types import utcnow
from fulcrum_core.oauth.clients import hash_secret
from fulcrum_core.oauth.plugin_clients import PluginClientPolicy, sync_plugin_clients
from fulcrum_core.oauth.refresh import RefreshTokenStore
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import update

from .conftest import ISSUER, REDIRECT, pkce_pair, submit_consent

TOKEN_URL = f"{ISSUER}/oauth/token"
PARTNER, INTERNAL = "fund-partner", "wealth-dept"


class Backend:
    """A plugin's backend at the token endpoint: a partner signs client assertions, an internal
    plugin sends its secret."""

    def __init__(self, http: httpx.AsyncClient, plugin_id: str, *, key: ECKey | None, secret: str | None):
        self.http, self.client_id, self.key, self.secret = http, f"plugin-{plugin_id}", key, secret

    async def token(self, **form: str) -> httpx.Response:
        if self.key is not None:
            claims = {
                "iss": self.client_id, "sub": self.client_id, "aud": TOKEN_URL,
                "exp": int(time.time()) + 60, "jti": secrets.token_hex(8),
            }
            form |= {
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": jwt.encode({"alg": "ES256", "kid": self.key.kid}, claims, self.key),
            }
            return await self.http.post("/oauth/token", data=form)
        assert self.secret is not None
        return await self.http.post("/oauth/token", data=form, auth=(self.client_id, self.secret))

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.token(grant_type="refresh_token", refresh_token=refresh_token)


@pytest.fixture
async def http(oauth_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The customer's browser and the plugins' backends, on ``oauth_app``."""
    transport = httpx.ASGITransport(app=oauth_app.client.app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as c:
        yield c


def _register(app: Any, http: httpx.AsyncClient, plugin_id: str, scopes: set[str]) -> Backend:
    """The plugin's client, as the registry grants it ``scopes``; its backend."""
    if plugin_id == PARTNER:
        key = ECKey.generate_key("P-256", auto_kid=True)
        policy = PluginClientPolicy(
            "partner", frozenset(scopes), True, jwks={"keys": [key.as_dict(private=False)]},
            redirect_uris=(REDIRECT,),
        )
        sync_plugin_clients(app.runtime.db, {plugin_id: policy})
        return Backend(http, plugin_id, key=key, secret=None)
    policy = PluginClientPolicy("department", frozenset(scopes), True, redirect_uris=(REDIRECT,))
    (change,) = sync_plugin_clients(app.runtime.db, {plugin_id: policy})
    return Backend(http, plugin_id, key=None, secret=change.secret)


def _authorize_url(backend: Backend, scope: str, challenge: str) -> str:
    return "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": backend.client_id, "redirect_uri": REDIRECT, "scope": scope,
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
    })


async def _authorize(http: httpx.AsyncClient, backend: Backend, scope: str) -> dict[str, Any]:
    """The customer allows ``scope`` on the consent page; the backend redeems the code: its tokens."""
    verifier, challenge = pkce_pair()
    decided = await submit_consent(http, _authorize_url(backend, scope, challenge))
    assert decided.status_code == 302, decided.text
    code = parse_qs(urlsplit(decided.headers["location"]).query)["code"][0]
    answer = await backend.token(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, code_verifier=verifier
    )
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def _consents(app: Any) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = app.get("/v1/consents").json()["consents"]
    return listed


@pytest.mark.anyio
@pytest.mark.parametrize("plugin_id", [PARTNER, INTERNAL])
async def test_no_refresh_token_outlives_the_consent_and_none_is_issued_after_it(
    oauth_app: Any, http: httpx.AsyncClient, plugin_id: str
) -> None:
    """The consent lasts 180 days, but each refresh issued a new 30-day token, so a backend refreshing
    now and then kept the customer's authorization for ever. Now a refresh token expires with its
    consent at the latest, and a refresh after the consent expired is refused, saying so."""
    backend = _register(oauth_app, http, plugin_id, {"holdings:read"})
    first = await _authorize(http, backend, "holdings:read")
    (consent,) = _consents(oauth_app)
    db = oauth_app.runtime.db
    store = RefreshTokenStore(db)

    # Ten days left of the consent: a refresh token issued now expires with it, not in 30 days.
    ends = utcnow() + timedelta(days=10)
    with db.session() as session:
        session.execute(update(ConsentRow).where(ConsentRow.id == consent["id"]).values(expires_at=ends))
    second = await backend.refresh(first["refresh_token"])
    assert second.status_code == 200, second.text
    issued = store.find(second.json()["refresh_token"])
    assert issued is not None
    assert issued.expires_at == ends

    # The consent has expired: the family's live token is refused, and the family revoked with it.
    ended = utcnow() - timedelta(seconds=1)
    with db.session() as session:
        session.execute(update(ConsentRow).where(ConsentRow.id == consent["id"]).values(expires_at=ended))
    refused = await backend.refresh(second.json()["refresh_token"])
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"
    assert refused.json()["error_description"] == (
        "the customer's consent this authorization rests on expired at "
        f"{ended.isoformat(timespec='seconds')}: the customer must authorize again"
    )
    for spent in (first["refresh_token"], second.json()["refresh_token"]):
        found = store.find(spent)
        assert found is not None
        assert found.revoked_at is not None
    assert [c["status"] for c in _consents(oauth_app)] == ["expired"]


@pytest.mark.anyio
async def test_a_token_that_expired_with_its_consent_is_refused_saying_why(
    oauth_app: Any, http: httpx.AsyncClient
) -> None:
    """Once the consent and with it the token have expired, the refusal says the consent expired, not
    only that the token is "invalid, expired, revoked or was already used"."""
    backend = _register(oauth_app, http, PARTNER, {"holdings:read"})
    tokens = await _authorize(http, backend, "holdings:read")
    (consent,) = _consents(oauth_app)
    ended = utcnow() - timedelta(minutes=1)
    db = oauth_app.runtime.db
    with db.session() as session:
        session.execute(update(ConsentRow).where(ConsentRow.id == consent["id"]).values(expires_at=ended))
        session.execute(
            update(OAuthRefreshTokenRow)
            .where(OAuthRefreshTokenRow.token_hash == hash_secret(tokens["refresh_token"]))
            .values(expires_at=ended)
        )
    refused = await backend.refresh(tokens["refresh_token"])
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"
    said = refused.json()["error_description"]
    assert said.startswith("the customer's consent this authorization rests on expired at ")


@pytest.mark.anyio
async def test_a_refresh_after_the_customer_revoked_the_consent_says_so(
    oauth_app: Any, http: httpx.AsyncClient
) -> None:
    backend = _register(oauth_app, http, PARTNER, {"holdings:read"})
    tokens = await _authorize(http, backend, "holdings:read")
    (consent,) = _consents(oauth_app)
    headers = {"Authorization": f"Bearer {oauth_app.token()}"}
    assert oauth_app.client.delete(f"/v1/consents/{consent['id']}", headers=headers).status_code == 200
    refused = await backend.refresh(tokens["refresh_token"])
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_grant"
    assert "the customer's consent this authorization rests on was revoked at" in (
        refused.json()["error_description"]
    )


@pytest.mark.anyio
@pytest.mark.parametrize("plugin_id", [INTERNAL, PARTNER])
async def test_an_authorization_for_actions_alone_is_a_consent_the_customer_sees_and_revokes(
    oauth_app: Any, http: httpx.AsyncClient, plugin_id: str
) -> None:
    """Authorizing only ``transactions:write`` recorded no consent: the plugin's backend held refresh
    tokens to start transactions for the customer, who could neither see that nor end it."""
    backend = _register(oauth_app, http, plugin_id, {"transactions:write", "slot:home.banner"})
    page = await http.get(_authorize_url(backend, "transactions:write", pkce_pair()[1]))
    # A partner's page tells the customer that allowing creates a consent they can revoke.
    assert ("creates a consent you can revoke" in page.text) is (plugin_id == PARTNER)
    tokens = await _authorize(http, backend, "transactions:write slot:home.banner")
    (consent,) = _consents(oauth_app)
    assert consent["plugin_id"] == plugin_id
    assert consent["scopes"] == ["transactions:write"]  # a placement is the bank's to grant
    assert consent["status"] == "authorised"
    assert consent["revoke_effect"] == ("data_access" if plugin_id == PARTNER else "tokens_only")
    assert "act for you" in consent["purpose"]
    refreshed = await backend.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text

    headers = {"Authorization": f"Bearer {oauth_app.token()}"}
    assert oauth_app.client.delete(f"/v1/consents/{consent['id']}", headers=headers).status_code == 200
    refused = await backend.refresh(refreshed.json()["refresh_token"])
    assert refused.status_code == 400, refused.text
    assert "was revoked at" in refused.json()["error_description"]


@pytest.mark.anyio
async def test_the_apps_own_tokens_rest_on_no_consent(oauth_app: Any, http: httpx.AsyncClient) -> None:
    """The mobile app's authorizations record no consent, and its refresh tokens still last 30 days."""
    verifier, challenge = pkce_pair()
    url = "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": "fulcrum-app", "redirect_uri": REDIRECT,
        "scope": "home:read transactions:write", "state": "s", "code_challenge": challenge,
        "code_challenge_method": "S256",
    })
    decided = await submit_consent(http, url)
    code = parse_qs(urlsplit(decided.headers["location"]).query)["code"][0]
    answer = await http.post("/oauth/token", data={
        "grant_type": "authorization_code", "client_id": "fulcrum-app", "code": code,
        "redirect_uri": REDIRECT, "code_verifier": verifier,
    })
    assert answer.status_code == 200, answer.text
    assert _consents(oauth_app) == []
    found = RefreshTokenStore(oauth_app.runtime.db).find(answer.json()["refresh_token"])
    assert found is not None
    assert found.expires_at > utcnow() + timedelta(days=29)
