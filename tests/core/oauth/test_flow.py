"""The full flow with authlib's own client: code + PKCE, an API call, refresh, revoke, refused after."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.integrations.base_client import OAuthError

from .conftest import CUSTOMER, ISSUER

pytestmark = pytest.mark.anyio


async def test_code_pkce_refresh_revoke(
    oauth_app: Any, oauth_client: Callable[..., Any], consent: Callable[..., Awaitable[Any]]
) -> None:
    """A real client logs in, reads /v1/home, refreshes (rotating), revokes, and cannot refresh after."""
    client = oauth_client(oauth_app.client.app, scope="home:read consents:read")
    verifier = "v" * 64
    url, state = client.create_authorization_url(f"{ISSUER}/oauth/authorize", code_verifier=verifier)
    redirect = await consent(url)
    assert redirect.status_code == 302
    location = redirect.headers["location"]
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == [state]
    assert query["iss"] == [ISSUER]  # RFC 9207

    token = await client.fetch_token(
        f"{ISSUER}/oauth/token", authorization_response=location, code_verifier=verifier
    )
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] <= 300
    assert set(token["scope"].split()) == {"home:read", "consents:read"}
    principal = oauth_app.runtime.tokens.verify(token["access_token"])
    assert (principal.sub, principal.kind, principal.client_id) == (CUSTOMER, "customer", "fulcrum-app")

    home = await client.get("/v1/home")
    assert home.status_code == 200, home.text
    assert "slots" in home.json()

    first_refresh = token["refresh_token"]
    refreshed = await client.refresh_token(f"{ISSUER}/oauth/token")
    assert refreshed["refresh_token"] != first_refresh
    assert (await client.get("/v1/home")).status_code == 200

    revoked = await client.revoke_token(
        f"{ISSUER}/oauth/revoke", token=refreshed["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200
    with pytest.raises(OAuthError) as refused:
        await client.refresh_token(f"{ISSUER}/oauth/token", refresh_token=refreshed["refresh_token"])
    assert refused.value.error == "invalid_grant"
