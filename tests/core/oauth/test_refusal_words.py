"""OAuth refusals keep RFC 6749's error codes; their ``error_description`` says what is wrong in words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

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
