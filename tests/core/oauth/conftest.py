"""Fixtures for the OAuth server's tests.

- ``oauth_app`` — the real app (``make_app``) with the development login on and no plugins.
- ``oauth_client`` — builds authlib's ``AsyncOAuth2Client`` talking to an app through httpx's ASGI
  transport, at the issuer's own loopback URL (what authlib accepts without TLS).
- ``consent`` — runs the consent page step: GET the authorization URL, submit the form, return the
  redirect ``Location``.
- ``pkce`` — a fresh (verifier, S256 challenge) pair.
- ``served`` — the app under uvicorn on a free loopback port (the development login on); its base URL.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from authlib.common.security import generate_token
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.settings import Settings
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.testing import PERSONAS

with warnings.catch_warnings():
    # authlib nudges towards httpx2; the workspace's HTTP client is httpx, which authlib still supports.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

ISSUER = "http://127.0.0.1:8000"
REDIRECT = "http://127.0.0.1:8765/callback"
CUSTOMER = "synthetic-young-professional"

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture
def oauth_app(make_app: Callable[..., Any]) -> Any:
    """The app with the development login enabled (an ``AppHarness``)."""
    return make_app(oauth_dev_login=True)


@pytest.fixture
async def oauth_client() -> AsyncIterator[Callable[..., AsyncOAuth2Client]]:
    """A factory of authlib clients bound to an app (closed at teardown)."""
    made: list[AsyncOAuth2Client] = []

    def build(app: Any, client_id: str = "fulcrum-app", **kwargs: Any) -> AsyncOAuth2Client:
        client = AsyncOAuth2Client(
            client_id=client_id,
            redirect_uri=REDIRECT,
            base_url=ISSUER,
            transport=httpx.ASGITransport(app=app),
            code_challenge_method="S256",
            **kwargs,
        )
        made.append(client)
        return client

    yield build
    for client in made:
        await client.aclose()


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge."""
    verifier = generate_token(64)
    return verifier, create_s256_code_challenge(verifier)


@pytest.fixture
def pkce() -> tuple[str, str]:
    """A fresh PKCE verifier and S256 challenge."""
    return pkce_pair()


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields of the consent form."""
    return {name: unescape(value) for name, value in _HIDDEN.findall(page)}


async def submit_consent(
    http: httpx.AsyncClient, url: str, *, customer: str = CUSTOMER, decision: str = "allow"
) -> httpx.Response:
    """Open the consent page at ``url`` and submit it; the response (a 302 on success)."""
    page = await http.get(url)
    assert page.status_code == 200, page.text
    fields = {**form_fields(page.text), "customer": customer, "decision": decision}
    return await http.post("/oauth/authorize", data=fields)


@pytest.fixture
async def browser(oauth_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The customer's user agent: a plain HTTP client on ``oauth_app`` that does not follow redirects."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=oauth_app.client.app), base_url=ISSUER
    ) as c:
        yield c


@pytest.fixture
def consent(browser: httpx.AsyncClient) -> Callable[..., Awaitable[httpx.Response]]:
    """``await consent(url, customer=..., decision=...)``: the consent step in the browser."""

    async def run(url: str, **kwargs: Any) -> httpx.Response:
        return await submit_consent(browser, url, **kwargs)

    return run


@pytest.fixture
def served(settings: Settings, migrated_sqlite: Path, tmp_path: Path) -> Iterator[str]:
    """The app under uvicorn on 127.0.0.1 and a port the OS chose; yields its base URL (the issuer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    conf = msgspec.structs.replace(settings, issuer=base, oauth_dev_login=True)
    shutil.copyfile(migrated_sqlite, tmp_path / "fulcrum.db")
    provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
    app = create_app(conf, runtime=build_runtime(conf, provider=provider, load_entry_points=False))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):  # until the server says it is listening (it normally takes milliseconds)
            if server.started or not thread.is_alive():
                break
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
