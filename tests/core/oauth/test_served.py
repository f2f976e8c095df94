"""The same flow against the app served by uvicorn on a free loopback port, with authlib's sync client."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError

from .conftest import CUSTOMER, REDIRECT, form_fields

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

pytestmark = pytest.mark.slow


def test_flow_against_a_served_app(served: str) -> None:
    """Code + PKCE, /v1/home, rotation (two refreshes at once with one token), revocation and refusal,
    over real HTTP."""
    verifier = "x" * 64
    with (
        OAuth2Client(
            client_id="fulcrum-app",
            redirect_uri=REDIRECT,
            scope="home:read",
            code_challenge_method="S256",
            base_url=served,
        ) as client,
        httpx.Client(base_url=served) as browser,
    ):
        url, state = client.create_authorization_url(f"{served}/oauth/authorize", code_verifier=verifier)
        page = browser.get(url)
        assert page.status_code == 200
        answer = browser.post(
            "/oauth/authorize", data={**form_fields(page.text), "customer": CUSTOMER, "decision": "allow"}
        )
        location = answer.headers["location"]
        assert parse_qs(urlsplit(location).query)["iss"] == [served]
        client.fetch_token(f"{served}/oauth/token", authorization_response=location, code_verifier=verifier)
        assert client.get("/v1/home").status_code == 200
        # Two screens refreshing at once with one token: both get new tokens of the family (the rotation
        # grace period), and each new refresh token works.
        spent = client.token["refresh_token"]
        form = {"grant_type": "refresh_token", "refresh_token": spent, "client_id": "fulcrum-app"}
        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(lambda _: httpx.post(f"{served}/oauth/token", data=form), range(2)))
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        other = httpx.post(
            f"{served}/oauth/token",
            data={**form, "refresh_token": answers[0].json()["refresh_token"]},
        )
        assert other.status_code == 200, other.text
        rotated = client.refresh_token(
            f"{served}/oauth/token", refresh_token=answers[1].json()["refresh_token"]
        )
        client.revoke_token(
            f"{served}/oauth/revoke", token=rotated["refresh_token"], token_type_hint="refresh_token"
        )
        with pytest.raises(OAuthError) as refused:
            client.refresh_token(f"{served}/oauth/token", refresh_token=rotated["refresh_token"])
        assert refused.value.error == "invalid_grant"
        assert state
