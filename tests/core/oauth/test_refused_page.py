"""An authorization request refused without a redirect (RFC 6749 section 4.1.2.1) is a page for the
customer in a browser, and stays OAuth error JSON for API clients; errors that go back to the client
still redirect, whatever the Accept."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fulcrum_core.oauth.plugin_clients import PluginClientPolicy, sync_plugin_clients

from .conftest import REDIRECT, pkce_pair

pytestmark = pytest.mark.anyio

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
CLIENT_WORDS = "This app is not registered with the bank, or has been switched off"
ADDRESS_WORDS = "The app asked to send you back to an address it has not registered"
FAULTY_WORDS = "The link that opened this page is faulty"


def _authorize_url(**overrides: str | None) -> str:
    params = {
        "response_type": "code", "client_id": "fulcrum-app", "redirect_uri": REDIRECT, "scope": "home:read",
        "state": "s-1", "code_challenge": pkce_pair()[1], "code_challenge_method": "S256",
    }
    params.update(overrides)
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def _assert_page(response: httpx.Response, words: str, error: str) -> None:
    """A 400 page in the consent page's style and headers, in both languages, with the OAuth error."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "<title>无法授权 · Cannot authorize</title>" in response.text
    assert "未作任何授权" in response.text
    assert "Nothing was authorized" in response.text
    assert words in response.text
    assert f"<code>{error}</code>" in response.text


@pytest.mark.parametrize(
    ("overrides", "words", "error", "technical"),
    [
        (
            {"client_id": "nobody"}, CLIENT_WORDS, "invalid_client",
            "client &#x27;nobody&#x27; is not registered",
        ),
        ({"client_id": None}, CLIENT_WORDS, "invalid_client", "Missing &#x27;client_id&#x27;"),
        (
            {"redirect_uri": "http://evil.example/callback"}, ADDRESS_WORDS, "invalid_request",
            "Redirect URI &#x27;http://evil.example/callback&#x27; is not supported",
        ),
        ({"redirect_uri": None}, ADDRESS_WORDS, "invalid_request", "Missing &#x27;redirect_uri&#x27;"),
        (
            {"response_type": "token", "client_id": "nobody"}, FAULTY_WORDS, "unsupported_response_type",
            "response_type &#x27;token&#x27; is not supported",
        ),
    ],
    ids=["unknown-client", "no-client", "unregistered-redirect", "no-redirect", "bad-type-unknown-client"],
)
async def test_a_browser_gets_a_page_naming_what_is_wrong(
    browser: httpx.AsyncClient, overrides: dict[str, str | None], words: str, error: str, technical: str
) -> None:
    """The customer's webview showed raw JSON; it gets a page saying what is wrong in words, with the
    technical error for the app's developer, and is sent nowhere."""
    page = await browser.get(_authorize_url(**overrides), headers=BROWSER)
    _assert_page(page, words, error)
    assert technical in page.text


async def test_a_disabled_client_is_a_page_too(oauth_app: Any, browser: httpx.AsyncClient) -> None:
    """A plugin's client that exists but is disabled (a partner without keys) is named as switched off."""
    sync_plugin_clients(oauth_app.runtime.db, {"fund": PluginClientPolicy("partner", frozenset(), True)})
    page = await browser.get(_authorize_url(client_id="plugin-fund"), headers=BROWSER)
    _assert_page(page, CLIENT_WORDS, "invalid_client")
    assert "client &#x27;plugin-fund&#x27; is disabled" in page.text


async def test_duplicated_parameters_are_a_faulty_link(browser: httpx.AsyncClient) -> None:
    """A parameter sent twice cannot be redirected either: the page says the link is faulty."""
    url = _authorize_url() + "&redirect_uri=" + REDIRECT
    _assert_page(await browser.get(url, headers=BROWSER), FAULTY_WORDS, "invalid_request")


async def test_what_was_sent_is_escaped_on_the_page(browser: httpx.AsyncClient) -> None:
    """A redirect URI carrying markup is shown as text, never as markup."""
    url = _authorize_url(redirect_uri="http://x/<script>alert(1)</script>")
    page = await browser.get(url, headers=BROWSER)
    _assert_page(page, ADDRESS_WORDS, "invalid_request")
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


@pytest.mark.parametrize("uri", ['http://x/"quoted"', "http://x/back\\slash", "http://x/回调"])
async def test_an_unregistered_uri_a_description_cannot_hold_is_refused_not_a_500(
    browser: httpx.AsyncClient, uri: str
) -> None:
    """A redirect URI with a character an error description may not hold (RFC 6749 section 5.2) made
    authlib fail building its refusal (a 500); it is refused like any other, the character shown as ?."""
    r = await browser.get(_authorize_url(redirect_uri=uri))
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert r.json()["error_description"].startswith("Redirect URI 'http://x/")
    assert "?" in r.json()["error_description"]
    page = await browser.get(_authorize_url(redirect_uri=uri), headers=BROWSER)
    _assert_page(page, ADDRESS_WORDS, "invalid_request")


@pytest.mark.parametrize("accept", ["application/json", "*/*", None], ids=["json", "any", "none"])
async def test_api_clients_still_get_the_oauth_error_json(
    browser: httpx.AsyncClient, accept: str | None
) -> None:
    """A client that asks for JSON (or anything) gets RFC 6749's error JSON, as before."""
    headers = {"Accept": accept} if accept is not None else {}
    r = await browser.get(_authorize_url(client_id="nobody"), headers=headers)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] == "invalid_client"


async def test_errors_for_the_client_still_redirect_a_browser(browser: httpx.AsyncClient) -> None:
    """An error RFC 6749 sends back to a registered redirect URI (no PKCE here) is still a redirect with
    state, for a browser too: the page is only for what cannot be redirected."""
    r = await browser.get(_authorize_url(code_challenge=None, code_challenge_method=None), headers=BROWSER)
    assert r.status_code == 302, r.text
    location = r.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == ["s-1"]
