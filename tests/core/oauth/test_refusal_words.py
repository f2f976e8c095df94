"""OAuth refusals keep RFC 6749's error codes; their ``error_description`` says what is wrong in words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fulcrum_core.oauth.plugin_clients import PluginClientPolicy, sync_plugin_clients
from fulcrum_core.oauth.server import oauth_server
from joserfc.jwk import ECKey

from .conftest import REDIRECT, pkce_pair


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    return make_app(issuer="https://bank.example", oauth_dev_login=True)


def _oauth_error(response: Any) -> tuple[str, str]:
    assert response.status_code in (400, 401), response.text
    body = response.json()
    return body["error"], body.get("error_description", "")


def test_a_revocation_without_a_token_names_the_token(app: Any) -> None:
    """``-d client_id=fulcrum-app`` alone answered a bare ``invalid_request``."""
    assert _oauth_error(app.client.post("/oauth/revoke", data={"client_id": "fulcrum-app"})) == (
        "invalid_request", "the token to revoke is missing: send it as the form parameter 'token'"
    )


@pytest.mark.parametrize(
    ("data", "description"),
    [
        ({}, "grant_type is missing; the grant types accepted are: authorization_code, client_credentials, "
         "refresh_token"),
        ({"grant_type": "refresh_tokn"}, "grant_type 'refresh_tokn' is not supported; the grant types "
         "accepted are: authorization_code, client_credentials, refresh_token; did you mean refresh_token?"),
        ({"grant_type": 'pass"word'}, "grant_type 'pass?word' is not supported; the grant types accepted "
         "are: authorization_code, client_credentials, refresh_token"),
    ],
    ids=["missing", "misspelt", "quote"],
)
def test_an_unsupported_grant_names_the_grant_sent_and_the_ones_accepted(
    app: Any, data: dict[str, str], description: str
) -> None:
    response = app.client.post("/oauth/token", data={"client_id": "fulcrum-app", **data})
    assert _oauth_error(response) == ("unsupported_grant_type", description)


def test_token_parameters_in_the_url_are_told_to_go_in_the_body(app: Any) -> None:
    """It said "must be application/x-www-form-urlencoded, not no content type"."""
    code, description = _oauth_error(app.client.post("/oauth/token?grant_type=refresh_token&client_id=x"))
    assert code == "invalid_request"
    assert description.startswith(
        "parameters belong in a form-encoded body (application/x-www-form-urlencoded), not the URL's query "
        "(found: client_id, grant_type"
    )


def _authorize(app: Any, **overrides: str) -> dict[str, list[str]]:
    params = {
        "response_type": "code", "client_id": "fulcrum-app", "redirect_uri": REDIRECT, "scope": "home:read",
        "state": "s-1", "code_challenge": pkce_pair()[1], "code_challenge_method": "S256", **overrides,
    }
    response = app.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)


def test_an_unknown_scope_is_named_with_a_did_you_mean(app: Any) -> None:
    query = _authorize(app, scope="home:raed")
    assert query["error"] == ["invalid_scope"]
    assert query["error_description"] == ["unknown scope 'home:raed'; did you mean home:read?"]


def test_the_implicit_flow_is_told_only_code_is_supported(app: Any) -> None:
    """``response_type=token`` answered ``error_description=token``."""
    query = _authorize(app, response_type="token")
    assert query["error"] == ["unsupported_response_type"]
    assert query["error_description"] == [
        "response_type 'token' is not supported; only 'code' is (the authorization code flow, with PKCE)"
    ]


# -- client authentication: authlib said "The client cannot authenticate with methods: [...]" or
# "The client does not exist on this server." whatever went wrong, and the latter for a client that
# exists but is disabled (a partner approved before its manifest listed keys, as the demo's).

PARTNER_WITHOUT_KEYS = PluginClientPolicy("partner", frozenset({"location:city"}), True)
INTERNAL = PluginClientPolicy("department", frozenset({"slot:home.banner"}), True)


def _token_refusal(app: Any, data: dict[str, str], auth: tuple[str, str] | None = None) -> str:
    response = app.client.post("/oauth/token", data=data, auth=auth)
    code, description = _oauth_error(response)
    assert code == "invalid_client"
    return description


def test_a_wrong_secret_is_named_as_not_the_current_one(app: Any) -> None:
    secret = sync_plugin_clients(app.runtime.db, {"wealth": INTERNAL})[0].secret
    assert secret
    new = oauth_server(app.runtime).clients.rotate_secret("plugin-wealth")
    grant = {"grant_type": "client_credentials"}
    assert _token_refusal(app, grant, ("plugin-wealth", secret)) == (
        "the secret sent for client 'plugin-wealth' is not its current one (fulcrum oauth rotate-secret "
        "gives a new secret, and the old one stops working at once)"
    )
    assert app.client.post("/oauth/token", data=grant, auth=("plugin-wealth", new)).status_code == 200


def test_an_unknown_client_is_named(app: Any) -> None:
    grant = {"grant_type": "client_credentials"}
    assert _token_refusal(app, grant, ("nobody", "x")) == "client 'nobody' is not registered here"


def test_a_disabled_partner_client_says_why_at_the_token_endpoint(app: Any) -> None:
    """The demo's merchant-promo: approved, no keys in its manifest; its client exists, disabled."""
    sync_plugin_clients(app.runtime.db, {"fund": PARTNER_WITHOUT_KEYS})
    description = _token_refusal(app, {"grant_type": "client_credentials", "client_id": "plugin-fund"})
    assert description.startswith("client 'plugin-fund' is disabled: a plugin's client works while")
    assert "lists its public keys under [oauth]" in description


def test_a_disabled_partner_client_says_why_at_the_authorization_endpoint(app: Any) -> None:
    """Its redirect URI is unknown, so the answer goes to the browser (a 400), not the redirect."""
    sync_plugin_clients(app.runtime.db, {"fund": PARTNER_WITHOUT_KEYS})
    params = {
        "response_type": "code", "client_id": "plugin-fund", "redirect_uri": REDIRECT,
        "scope": "location:city", "state": "s-1", "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
    }
    code, description = _oauth_error(app.client.get("/oauth/authorize", params=params))
    assert code == "invalid_client"
    assert description.startswith("client 'plugin-fund' is disabled: a plugin's client works while")


def test_a_secret_sent_for_a_partner_client_names_the_method_it_uses(app: Any) -> None:
    key = ECKey.generate_key("P-256", auto_kid=True)
    policy = PARTNER_WITHOUT_KEYS._replace(jwks={"keys": [key.as_dict(private=False)]})
    sync_plugin_clients(app.runtime.db, {"fund": policy})
    assert _token_refusal(app, {"grant_type": "client_credentials"}, ("plugin-fund", "guess")) == (
        "client 'plugin-fund' authenticates with a client assertion signed with a key it registered "
        "(private_key_jwt), not its id and secret by HTTP Basic (client_secret_basic)"
    )


def test_the_public_app_asking_for_client_credentials_is_told_the_grant_does_not_take_it(app: Any) -> None:
    description = _token_refusal(app, {"grant_type": "client_credentials", "client_id": "fulcrum-app"})
    assert description == (
        "client 'fulcrum-app' authenticates with its client_id alone (a public client), which this request "
        "does not take (it takes client_secret_basic, private_key_jwt)"
    )


def test_a_scope_beyond_the_clients_grant_is_named_with_what_it_holds(app: Any) -> None:
    """"the requested scope is beyond what this client was granted" named neither the scope nor the
    grant, though the scopes asked for are the request's and the client's are the caller's own."""
    secret = sync_plugin_clients(app.runtime.db, {"wealth": INTERNAL})[0].secret
    assert secret
    grant = {"grant_type": "client_credentials", "scope": "slot:home.banner home:read search:read"}
    response = app.client.post("/oauth/token", data=grant, auth=("plugin-wealth", secret))
    assert _oauth_error(response) == (
        "invalid_scope",
        "client 'plugin-wealth' was not granted home:read, search:read; its scopes are: slot:home.banner",
    )


@pytest.mark.parametrize("credentials", [b"plugin-wealth:", b"plugin-wealth"])
def test_basic_credentials_without_a_secret_say_none_was_sent(app: Any, credentials: bytes) -> None:
    """``-u plugin-wealth`` (no secret, or no colon) was told "the secret sent … is not its current
    one", sending the developer to rotate a secret that was never sent."""
    import base64

    sync_plugin_clients(app.runtime.db, {"wealth": INTERNAL})
    basic = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
    response = app.client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic)
    assert _oauth_error(response) == (
        "invalid_client",
        "no secret was sent for client 'plugin-wealth': HTTP Basic carries client_id:secret",
    )


def test_an_authorization_asking_beyond_the_clients_grant_names_the_scopes(app: Any) -> None:
    """A known scope the client may not ask for went back as authlib's "The requested scope is invalid,
    unknown, or malformed.", though the scope is well formed and known: only not the client's."""
    query = _authorize(app, scope="home:read registry:review")
    assert query["error"] == ["invalid_scope"]
    (description,) = query["error_description"]
    assert description.startswith("client 'fulcrum-app' was not granted registry:review; its scopes are: ")
    assert "home:read" in description


def test_a_refresh_asking_beyond_its_grant_names_the_scopes(app: Any) -> None:
    """A refresh asking for more than its token was issued for got the same vague words."""
    token = oauth_server(app.runtime).refresh_tokens.issue(
        family_id=None, client_id="fulcrum-app", subject="c-1", subject_kind="customer", scope="home:read"
    )
    data = {
        "grant_type": "refresh_token", "client_id": "fulcrum-app", "refresh_token": token,
        "scope": "home:read search:read",
    }
    assert _oauth_error(app.client.post("/oauth/token", data=data)) == (
        "invalid_scope",
        "the refresh token was not issued for search:read; ask for no more than its scope: home:read",
    )
