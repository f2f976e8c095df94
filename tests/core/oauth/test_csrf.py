"""The consent form refuses forged decisions (CSRF) and the consent page refuses to be framed."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from fulcrum_core.data.models.oauth_code import OAuthCodeRow
from fulcrum_core.oauth import consent_csrf
from sqlalchemy import func, select

from .conftest import CUSTOMER, ISSUER, REDIRECT, form_fields, pkce_pair

COOKIE = "fulcrum-consent"


def _authorize_url(**overrides: str) -> str:
    params = {
        "response_type": "code",
        "client_id": "fulcrum-app",
        "redirect_uri": REDIRECT,
        "scope": "home:read",
        "state": "s-1",
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
        **overrides,
    }
    return "/oauth/authorize?" + urlencode(params)


def _codes(app: Any) -> int:
    with app.runtime.db.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(OAuthCodeRow)) or 0)


def _assert_refused(app: Any, response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert "location" not in response.headers
    problem = response.json()
    assert (problem["code"], problem["field"]) == ("oauth.csrf", "csrf_token")
    assert _codes(app) == 0


async def _form(browser: httpx.AsyncClient, url: str | None = None) -> dict[str, str]:
    page = await browser.get(url or _authorize_url())
    assert page.status_code == 200, page.text
    return {**form_fields(page.text), "customer": CUSTOMER, "decision": "allow"}


@pytest.fixture
async def attacker(oauth_app: Any) -> Any:
    """Another user agent on the same app: it holds no cookie of the customer's browser."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=oauth_app.client.app), base_url=ISSUER
    ) as c:
        yield c


@pytest.mark.anyio
async def test_page_sets_csrf_cookie_token_and_anti_framing_headers(
    oauth_app: Any, browser: httpx.AsyncClient
) -> None:
    """The consent page carries a token, sets an HttpOnly SameSite cookie and forbids framing."""
    page = await browser.get(_authorize_url())
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    cookie = page.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie  # a plain-http issuer (development) cannot use a Secure cookie
    token = form_fields(page.text)[consent_csrf.FIELD]
    assert token
    assert token not in page.headers["set-cookie"]


@pytest.mark.anyio
@pytest.mark.parametrize("token", [None, "", "wrong", "é" * 43])
async def test_missing_or_wrong_token_is_refused(
    oauth_app: Any, browser: httpx.AsyncClient, token: str | None
) -> None:
    """A decision without the form's token, or with a wrong one, is 403 and issues no code."""
    fields = await _form(browser)
    fields.pop(consent_csrf.FIELD)
    if token is not None:
        fields[consent_csrf.FIELD] = token
    _assert_refused(oauth_app, await browser.post("/oauth/authorize", data=fields))


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.anyio
async def test_a_browser_gets_an_expired_page_linking_back_not_json(
    oauth_app: Any, browser: httpx.AsyncClient
) -> None:
    """A browser posting a form whose token is gone (cookie expired) got a JSON problem; it gets a page
    in the consent page's style saying the form expired, with a link that opens the consent page for
    the same authorization request. Nothing is issued; API clients still get the problem."""
    url = _authorize_url(state="s-expired")
    fields = await _form(browser, url)
    fields.pop(consent_csrf.FIELD)
    page = await browser.post("/oauth/authorize", data=fields, headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "location" not in page.headers
    assert "This page has expired" in page.text
    assert _codes(oauth_app) == 0
    link = re.search(r'<a class="again" href="([^"]+)"', page.text)
    assert link is not None
    again = await browser.get(html.unescape(link.group(1)))
    assert again.status_code == 200, again.text
    assert form_fields(again.text)["state"] == "s-expired"
    for accept in ("application/json", "application/problem+json", "*/*"):
        api = await browser.post("/oauth/authorize", data=fields, headers={"Accept": accept})
        _assert_refused(oauth_app, api)


@pytest.mark.anyio
async def test_cross_site_post_without_the_cookie_is_refused(
    oauth_app: Any, browser: httpx.AsyncClient, attacker: httpx.AsyncClient
) -> None:
    """A third-party page posting the form (even with a valid token) lacks the cookie: refused."""
    fields = await _form(browser)
    _assert_refused(oauth_app, await attacker.post("/oauth/authorize", data=fields))


@pytest.mark.anyio
async def test_token_from_another_browser_is_refused(
    oauth_app: Any, browser: httpx.AsyncClient, attacker: httpx.AsyncClient
) -> None:
    """A token the attacker obtained in their own browser does not verify with the customer's cookie."""
    url = _authorize_url()
    await browser.get(url)  # the customer's browser holds its own secret
    forged = await _form(attacker, url)
    _assert_refused(oauth_app, await browser.post("/oauth/authorize", data=forged))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "changed", [{"state": "other"}, {"redirect_uri": "http://127.0.0.1:9/x"}, {"scope": "home:read x"}]
)
async def test_token_is_bound_to_its_authorization_request(
    oauth_app: Any, browser: httpx.AsyncClient, changed: dict[str, str]
) -> None:
    """A valid token replayed with different request parameters is refused before authlib sees them."""
    fields = {**await _form(browser), **changed}
    _assert_refused(oauth_app, await browser.post("/oauth/authorize", data=fields))


@pytest.mark.anyio
async def test_forged_denial_is_refused_too(oauth_app: Any, browser: httpx.AsyncClient) -> None:
    """Even ``decision=deny`` needs the token: no ``access_denied`` redirect for a forged form."""
    fields = await _form(browser)
    fields.pop(consent_csrf.FIELD)
    _assert_refused(oauth_app, await browser.post("/oauth/authorize", data={**fields, "decision": "deny"}))


@pytest.mark.anyio
async def test_two_open_consent_pages_both_submit(oauth_app: Any, browser: httpx.AsyncClient) -> None:
    """Opening a second consent page keeps the browser's secret, so the first form still works."""
    first = await _form(browser, _authorize_url(state="tab-1"))
    second = await _form(browser, _authorize_url(state="tab-2"))
    assert first[consent_csrf.FIELD] != second[consent_csrf.FIELD]
    for fields in (first, second):
        answer = await browser.post("/oauth/authorize", data=fields)
        assert answer.status_code == 302, answer.text
        assert "code=" in answer.headers["location"]
    assert _codes(oauth_app) == 2


@pytest.mark.anyio
async def test_malformed_cookie_is_replaced_and_refused(oauth_app: Any, browser: httpx.AsyncClient) -> None:
    """A cookie this server did not issue is never trusted: the page issues a fresh secret."""
    browser.cookies.set(COOKIE, "short")
    page = await browser.get(_authorize_url())
    assert "short" not in page.headers["set-cookie"]
    assert consent_csrf.verify("short", "anything", {}) is False


def test_https_issuer_uses_a_host_only_secure_cookie(make_app: Callable[..., Any]) -> None:
    """Behind TLS the cookie is ``__Host-`` prefixed and Secure, so sibling hosts cannot plant one."""
    app = make_app(issuer="https://bank.example", oauth_dev_login=True)
    page = app.client.get(_authorize_url())
    assert page.status_code == 200, page.text
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("__Host-fulcrum-consent=")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


def test_token_helpers_refuse_missing_parts() -> None:
    """No secret, an empty token or a token for other parameters never verifies."""
    secret = consent_csrf.new_secret()
    token = consent_csrf.form_token(secret, {"state": "a"})
    assert consent_csrf.verify(secret, token, {"state": "a"})
    assert not consent_csrf.verify(None, token, {"state": "a"})
    assert not consent_csrf.verify(secret, None, {"state": "a"})
    assert not consent_csrf.verify(secret, token, {"state": "b"})
    assert not consent_csrf.verify(consent_csrf.new_secret(), token, {"state": "a"})
