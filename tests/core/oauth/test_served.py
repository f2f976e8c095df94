"""The same flow against the app served by uvicorn on a free loopback port, with authlib's sync client."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
import uvicorn
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.settings import Settings
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.testing import PERSONAS

from .conftest import CUSTOMER, REDIRECT, form_fields

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import OAuth2Client

pytestmark = pytest.mark.slow


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


def test_flow_against_a_served_app(served: str) -> None:
    """Code + PKCE, /v1/home, rotation, revocation and refusal, over real HTTP."""
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
        rotated = client.refresh_token(f"{served}/oauth/token")
        client.revoke_token(
            f"{served}/oauth/revoke", token=rotated["refresh_token"], token_type_hint="refresh_token"
        )
        with pytest.raises(OAuthError) as refused:
            client.refresh_token(f"{served}/oauth/token", refresh_token=rotated["refresh_token"])
        assert refused.value.error == "invalid_grant"
        assert state
