"""Metadata, JWKS, introspection, the resource server's refusals, and the development-login switch."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.oauth.plugin_clients import PluginClientPolicy, sync_plugin_clients
from fulcrum_core.oauth.server import oauth_server
from joserfc import jws
from joserfc.jwk import ECKey

from .conftest import ISSUER, REDIRECT, form_fields, pkce_pair


def test_metadata_describes_the_server(oauth_app: Any) -> None:
    """RFC 8414 metadata: our issuer, S256 only, no implicit or password grants, iss parameter."""
    r = oauth_app.client.get("/.well-known/oauth-authorization-server")
    assert r.status_code == 200
    meta = r.json()
    assert meta["issuer"] == oauth_app.runtime.settings.issuer
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["jwks_uri"] == f"{meta['issuer']}/oauth/jwks"


def test_jwks_verifies_issued_tokens(oauth_app: Any) -> None:
    """The published keys are public (no ``d``) and the current one verifies a fresh token."""
    keys = oauth_app.client.get("/oauth/jwks").json()["keys"]
    assert keys
    assert all("d" not in k for k in keys)
    token = oauth_app.token()
    kid = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))["kid"]
    key = ECKey.import_key(next(k for k in keys if k["kid"] == kid))
    assert jws.deserialize_compact(token, key, algorithms=["ES256"]).payload


def _home(app: Any, token: str) -> httpx.Response:
    r: httpx.Response = app.client.get("/v1/home", headers={"Authorization": f"Bearer {token}"})
    return r


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_resource_server_refusals(oauth_app: Any) -> None:
    """Wrong aud, expired, bad signature, alg=none and an attacker's key in the header: 401 invalid_token."""
    runtime = oauth_app.runtime
    good = oauth_app.token()
    header_b64, payload_b64, _ = good.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=="))
    past = TokenService(
        runtime.tokens.keys,
        issuer=runtime.tokens.issuer,
        audience=runtime.tokens.audience,
        max_ttl_seconds=300,
        clock=lambda: time.time() - 3600,
    )
    attacker = ECKey.generate_key("P-256", auto_kid=True)
    kid = runtime.tokens.keys.current_kid
    forged_header = {"alg": "ES256", "typ": "at+jwt", "kid": kid, "jwk": attacker.as_dict(private=False)}
    forged = jws.serialize_compact(
        forged_header, json.dumps(payload).encode(), attacker, algorithms=["ES256"]
    )
    cases = {
        "token.wrong_audience": runtime.tokens.issue(
            "synthetic-young-professional", ["home:read"], audience="other"
        ),
        "token.expired": past.issue("synthetic-young-professional", ["home:read"]),
        "token.bad_signature": f"{header_b64}.{payload_b64}.{'A' * 86}",
        "token.bad_alg": f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': kid})}.{payload_b64}.",
        "token.bad_signature ": forged,
    }
    for code, token in cases.items():
        r = _home(oauth_app, token)
        assert r.status_code == 401, code
        assert r.json()["code"] == code.strip()
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert _home(oauth_app, good).status_code == 200


@pytest.mark.anyio
async def test_introspection(oauth_app: Any, oauth_client: Callable[..., Any]) -> None:
    """A client introspects its own token (active) but learns nothing of another client's."""
    db = oauth_app.runtime.db
    policy = PluginClientPolicy("department", frozenset({"slot:home.banner"}), True)
    secrets = {c.client_id: c.secret for c in sync_plugin_clients(db, {"a": policy, "b": policy})}
    transport = httpx.ASGITransport(app=oauth_app.client.app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        got = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("plugin-a", secrets["plugin-a"] or ""),
        )
        access = got.json()["access_token"]
        mine = await http.post(
            "/oauth/introspect", data={"token": access}, auth=("plugin-a", secrets["plugin-a"] or "")
        )
        assert mine.json()["active"] is True
        assert mine.json()["client_id"] == "plugin-a"
        theirs = await http.post(
            "/oauth/introspect", data={"token": access}, auth=("plugin-b", secrets["plugin-b"] or "")
        )
        assert theirs.json() == {"active": False}
        garbage = await http.post(
            "/oauth/introspect", data={"token": "x.y.z"}, auth=("plugin-a", secrets["plugin-a"] or "")
        )
        assert garbage.json() == {"active": False}
        missing = await http.post("/oauth/introspect", data={}, auth=("plugin-a", secrets["plugin-a"] or ""))
        assert missing.status_code == 400
        assert missing.json()["error"] == "invalid_request"
        anonymous = await http.post("/oauth/introspect", data={"token": access})
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "invalid_client"


def test_consent_page_needs_a_login(make_app: Callable[..., Any]) -> None:
    """Without the development login (or a bank's own), the consent page refuses with 403."""
    app = make_app()
    query = {
        "response_type": "code",
        "client_id": "fulcrum-app",
        "redirect_uri": REDIRECT,
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
    }
    client = httpx.Client(transport=app.client._transport, base_url=ISSUER)
    r = client.get("/oauth/authorize", params=query)
    assert r.status_code == 403
    assert r.json()["code"] == "oauth.no_login"
    posted = client.post("/oauth/authorize", data={**query, "decision": "allow", "customer": "x"})
    assert posted.status_code == 403
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    page = client.get("/oauth/authorize", params=query, headers=browser)
    assert (page.status_code, page.headers["content-type"].split(";")[0]) == (403, "text/html")
    assert "尚未开通客户登录" in page.text
    assert "has not switched customer sign-in on" in page.text
    assert "oauth.no_login" in page.text
    assert "<form" not in page.text


@pytest.mark.anyio
async def test_bad_decision_and_unknown_customer(oauth_app: Any, browser: httpx.AsyncClient) -> None:
    """The consent form names the bad field: a decision other than allow/deny, an unknown customer."""
    base = {
        "response_type": "code",
        "client_id": "fulcrum-app",
        "redirect_uri": REDIRECT,
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
    }
    page = await browser.get("/oauth/authorize", params=base)
    base = form_fields(page.text)  # the same request, with the form's CSRF token
    r = await browser.post("/oauth/authorize", data={**base, "decision": "maybe"})
    assert r.status_code == 400
    assert r.json()["field"] == "decision"
    provider = oauth_app.runtime.provider
    asked_on: list[threading.Thread] = []

    def profile(customer_id: str) -> Any:
        asked_on.append(threading.current_thread())
        return type(provider).profile(provider, customer_id)

    provider.profile = profile
    r = await browser.post("/oauth/authorize", data={**base, "decision": "allow", "customer": "nobody"})
    assert r.status_code == 400
    assert r.json()["field"] == "customer"
    assert r.json()["detail"] == (
        "the bank does not know a customer 'nobody': choose one the development login lists"
    )
    assert asked_on
    assert threading.current_thread() not in asked_on  # a bank's provider may do I/O: never on the loop


@pytest.mark.anyio
async def test_consent_page_escapes_what_clients_send(oauth_app: Any, browser: httpx.AsyncClient) -> None:
    """A hostile client name and state come back escaped, never as markup."""
    oauth_server(oauth_app.runtime).clients.register(
        "evil",
        kind="app",
        name_zh="<script>alert(1)</script>",
        auth_method="none",
        grant_types=["authorization_code"],
        scopes=["home:read"],
        redirect_uris=[REDIRECT],
    )
    query = {
        "response_type": "code",
        "client_id": "evil",
        "redirect_uri": REDIRECT,
        "state": '"><b>x',
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
    }
    page = await browser.get("/oauth/authorize", params=query)
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert "&lt;script&gt;" in page.text
    assert '"><b>x' not in page.text
    assert page.headers["cache-control"] == "no-store"
    assert '<input name="customer" required>' in page.text  # the test provider cannot list customers


def test_behind_a_tls_proxy_the_issuer_url_counts(make_app: Callable[..., Any]) -> None:
    """A request arriving over plain HTTP at an https issuer is judged by the issuer's URL, not refused."""
    app = make_app(issuer="https://bank.example", oauth_dev_login=True)
    r = app.client.post("/oauth/token", data={"grant_type": "password", "client_id": "fulcrum-app"})
    assert r.status_code == 400
    assert r.json()["error"] == "unsupported_grant_type"
    meta = app.client.get("/.well-known/oauth-authorization-server").json()
    assert meta["token_endpoint"] == "https://bank.example/oauth/token"
