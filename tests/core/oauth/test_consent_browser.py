"""The consent page and the error catalogue's pages in a real browser (headless Chromium driven by
Playwright) against the served app: what the customer sees, allowing and denying, and what the page's
headers forbid.

Chromium comes from the system (``/usr/bin/chromium``, Debian's ``chromium`` package; ``.ci/run``
installs it when missing); without it these tests skip, saying so.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fulcrum_core.problem_types import by_code

from .conftest import CUSTOMER, REDIRECT, pkce_pair

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium as root in a container, and quiet: no sandbox, no GPU, none of its own network traffic.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the module."""
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (install the chromium package; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh page whose requests to the app's redirect URI are answered by the test (nothing listens
    there); ``page.redirects`` collects the URLs the browser was sent to, ``page.problems`` every
    console error and uncaught script error."""
    context = chromium.new_context(locale="zh-CN")
    tab = context.new_page()
    tab.set_default_timeout(10_000)  # the page is local: a step that takes longer has failed
    tab.redirects = []
    tab.problems = []
    tab.on("console", lambda message: message.type == "error" and tab.problems.append(message.text))
    tab.on("pageerror", lambda error: tab.problems.append(str(error)))

    def callback(route: Any) -> None:
        tab.redirects.append(route.request.url)
        route.fulfill(status=200, content_type="text/plain", body="back in the app")

    tab.route(REDIRECT + "*", callback)
    yield tab
    context.close()


def _authorize_url(base: str, challenge: str, scope: str = "home:read consents:read") -> str:
    query = {
        "response_type": "code", "client_id": "fulcrum-app", "redirect_uri": REDIRECT, "scope": scope,
        "state": "s-42", "code_challenge": challenge, "code_challenge_method": "S256",
    }
    return f"{base}/oauth/authorize?{urlencode(query)}"


def test_allowing_in_the_browser_signs_the_customer_in(served: str, page: Any) -> None:
    """The page names the app and each scope in both languages, renders with its own style and no
    script or policy error; choosing a customer and Allow returns a code that buys a working token."""
    verifier, challenge = pkce_pair()
    page.goto(_authorize_url(served, challenge))
    assert page.title() == "授权确认 · Authorize"
    assert "手机银行" in page.inner_text("body")
    scopes = page.locator("li").all_inner_texts()
    assert any("home:read" in s and "查看首页" in s and "read the home page" in s for s in scopes)
    assert any("consents:read" in s for s in scopes)
    # The inline stylesheet is allowed by the page's policy: the body is laid out by it.
    assert page.evaluate("getComputedStyle(document.body).maxWidth") == "576px"
    page.fill("[name=customer]", CUSTOMER)  # typed in: this provider cannot list its customers
    page.get_by_role("button", name="同意 Allow").click()
    page.wait_for_url(REDIRECT + "*")
    assert page.problems == []
    query = parse_qs(urlsplit(page.redirects[-1]).query)
    assert query["state"] == ["s-42"]
    assert query["iss"] == [served]
    token = httpx.post(f"{served}/oauth/token", data={
        "grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT,
        "client_id": "fulcrum-app", "code_verifier": verifier,
    })
    assert token.status_code == 200, token.text
    access = token.json()["access_token"]
    home = httpx.get(f"{served}/v1/home", headers={"Authorization": f"Bearer {access}"})
    assert home.status_code == 200, home.text


def test_denying_in_the_browser_returns_access_denied(served: str, page: Any) -> None:
    """Deny sends the browser back to the app with ``access_denied`` and the state, and no code, without
    making the customer fill in the login first (the form's required field does not hold Deny back)."""
    _, challenge = pkce_pair()
    page.goto(_authorize_url(served, challenge))
    page.get_by_role("button", name="拒绝 Deny").click()
    page.wait_for_url(REDIRECT + "*")
    query = parse_qs(urlsplit(page.redirects[-1]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["s-42"]
    assert "code" not in query


def test_the_consent_page_cannot_be_framed(served: str, page: Any) -> None:
    """A page of another origin framing the consent page gets nothing rendered in the frame
    (clickjacking): the browser enforces ``frame-ancestors 'none'``."""
    _, challenge = pkce_pair()
    target = _authorize_url(served, challenge)
    page.set_content(f'<iframe id="f" src="{target}" width="600" height="400"></iframe>')
    page.wait_for_timeout(500)
    frame = page.frame_locator("#f")
    assert frame.locator("button").count() == 0


def test_an_unregistered_redirect_uri_is_shown_not_followed(served: str, page: Any) -> None:
    """A redirect URI the client did not register is never followed: the browser stays on a page (not
    raw JSON) that tells the customer in words, in the consent page's style and with no script or
    policy error, and names the refused URI for the app's developer."""
    _, challenge = pkce_pair()
    bad = _authorize_url(served, challenge).replace("8765", "9999")
    response = page.goto(bad)
    assert response is not None
    assert response.status == 400
    assert response.headers["content-type"].startswith("text/html")
    assert page.title() == "无法授权 · Cannot authorize"
    body = page.inner_text("body")
    assert "未在本行登记的地址" in body
    assert "The app asked to send you back to an address it has not registered" in body
    technical = page.locator(".tech").inner_text()
    assert "Redirect URI 'http://127.0.0.1:9999/callback' is not supported" in technical
    assert page.evaluate("getComputedStyle(document.body).maxWidth") == "576px"
    assert page.redirects == []
    # Chromium logs the page's own 400 status as a console error; nothing else may show up.
    assert [p for p in page.problems if "status of 400" not in p] == []


def test_a_problems_type_opens_its_page_in_the_browser(served: str, page: Any) -> None:
    """The error catalogue is a web page too: a real problem's ``type``, opened in the browser, is its
    code's page, rendered with its own style and no script or policy error; it links back to the index,
    whose every code links to its own page."""
    problem = httpx.get(f"{served}/v1/home").json()
    assert problem["type"] == f"{served}/problems/token.missing"
    page.goto(problem["type"])
    assert page.title() == "token.missing: No access token"
    assert page.locator("h1").inner_text() == "No access token"
    assert page.locator("body").evaluate("e => getComputedStyle(e).maxWidth") == "960px"  # its own style
    page.get_by_role("link", name="All problem types").click()
    assert page.url == f"{served}/problems"
    assert page.locator("h1").inner_text() == "Problem types"
    codes = page.locator("tbody a").all_inner_texts()
    assert "token.missing" in codes
    assert len(codes) == len(set(codes)) >= 80
    page.get_by_role("link", name="transaction.invalid_params", exact=True).click()
    assert page.url == f"{served}/problems/transaction.invalid_params"
    assert page.locator("h1").inner_text() == by_code("transaction.invalid_params").title  # type: ignore[union-attr]
    assert page.problems == []
