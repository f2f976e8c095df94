"""An authorization request whose query is no text (a malformed percent-escape, bytes that are not UTF-8)
is refused in OAuth's own words: at the redirect URI once it is trusted, else to the user agent (RFC 6749
section 4.1.2.1). Read leniently, ``state=%ff`` was echoed as a state the client never sent."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from .conftest import REDIRECT, pkce_pair

pytestmark = pytest.mark.anyio

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def _authorize_url(raw: str, **overrides: str | None) -> str:
    """The app's authorization request with ``raw`` (sent as is) appended to its query."""
    params = {
        "response_type": "code", "client_id": "fulcrum-app", "redirect_uri": REDIRECT, "scope": "home:read",
        "state": "s-1", "code_challenge": pkce_pair()[1], "code_challenge_method": "S256",
    }
    params.update(overrides)
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None}) + raw


def _redirected(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    return parse_qs(urlsplit(location).query)


@pytest.mark.parametrize(
    ("raw", "overrides", "words"),
    [
        ("&scope=home%zzread", {"scope": None}, "query parameter 'scope' holds '%zz'"),
        ("&nonce=%ff%fe", {}, "query parameter 'nonce' is not UTF-8 text once percent-decoded (byte 0: 0xff"),
        ("&code_challenge=abc%", {"code_challenge": None}, "query parameter 'code_challenge' holds '%'"),
    ],
    ids=["scope-escape", "other-bytes", "trailing-percent"],
)
@pytest.mark.parametrize("accept", [None, BROWSER], ids=["api", "browser"])
async def test_a_parameter_that_is_no_text_goes_back_to_the_redirect_uri(
    browser: httpx.AsyncClient, raw: str, overrides: dict[str, str | None], words: str,
    accept: dict[str, str] | None,
) -> None:
    """A registered client and redirect URI: ``invalid_request`` naming the parameter and the escape goes
    back there with the state, as any other refusal of the request does, whatever the Accept."""
    query = _redirected(await browser.get(_authorize_url(raw, **overrides), headers=accept))
    assert query["error"] == ["invalid_request"]
    assert words in query["error_description"][0], query
    assert query["state"] == ["s-1"]


async def test_a_state_that_is_no_text_is_not_echoed(browser: httpx.AsyncClient) -> None:
    """The state the client sent cannot be given back when it is no text: the refusal carries none,
    rather than a replacement character the client never sent."""
    query = _redirected(await browser.get(_authorize_url("&state=%ff", state=None)))
    assert query["error"] == ["invalid_request"]
    assert "query parameter 'state' is not UTF-8" in query["error_description"][0]
    assert "state" not in query


@pytest.mark.parametrize(
    ("raw", "overrides", "words"),
    [
        ("&client_id=fulcrum%ffapp", {"client_id": None}, "query parameter 'client_id' is not UTF-8"),
        ("&redirect_uri=http://127.0.0.1:8765/c%zz", {"redirect_uri": None},
         "query parameter 'redirect_uri' holds '%zz'"),
        ("&%ff=1", {}, "a query parameter's name is not UTF-8"),
        ("&sc%zope=1", {}, "a query parameter's name holds '%zo'"),
    ],
    ids=["client-bytes", "redirect-escape", "name-bytes", "name-escape"],
)
async def test_an_untrusted_redirect_uri_is_never_redirected_to(
    browser: httpx.AsyncClient, raw: str, overrides: dict[str, str | None], words: str
) -> None:
    """The client's id, its redirect URI or a parameter's name no text: the redirect URI cannot be
    trusted, so the refusal is the OAuth error JSON for an API client and a page for a browser."""
    url = _authorize_url(raw, **overrides)
    r = await browser.get(url)
    assert r.status_code == 400, r.text
    assert "location" not in r.headers
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == "invalid_request"
    assert words in body["error_description"], body
    page = await browser.get(url, headers=BROWSER)
    assert page.status_code == 400, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "location" not in page.headers
    assert "The link that opened this page is faulty" in page.text
    assert "<code>invalid_request</code>" in page.text


async def test_text_in_the_query_still_opens_the_consent_page(browser: httpx.AsyncClient) -> None:
    """Percent-escaped UTF-8 (a state in Chinese) and ``+`` for a space are text, read as before."""
    r = await browser.get(_authorize_url("", state="状态 1"))
    assert r.status_code == 200, r.text
    assert 'value="状态 1"' in r.text


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
async def test_the_back_channel_refuses_such_a_query_too(oauth_app: Any, path: str) -> None:
    """The back channel takes no query at all; one that is no text is refused alike, in OAuth's words."""
    r = oauth_app.client.post(f"{path}?%ff=1", data={"grant_type": "client_credentials"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert "not UTF-8" in r.json()["error_description"]


@pytest.mark.parametrize("query", ["%C3%A9=1", "a%22b=1", "%C3%A9=%ff", "caf%C3%A9=1&caf%C3%A9=2"])
async def test_a_name_a_description_cannot_hold_is_refused_not_a_500(oauth_app: Any, query: str) -> None:
    """A back-channel refusal quoting a query parameter's name with an ``é`` or a ``"`` made authlib fail
    building its description (a 500); the character is shown as ``?``, as in every other description."""
    r = oauth_app.client.post(f"/oauth/token?{query}", data={"grant_type": "client_credentials"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert r.json()["error_description"].isascii()
    form = oauth_app.client.post(
        "/oauth/token", content=query.replace("=1", "=x").encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 400, form.text
    assert form.json()["error_description"].isascii()
