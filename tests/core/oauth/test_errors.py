"""Each way a client can get the protocol wrong is refused with the exact OAuth error."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fulcrum_core.data.models.oauth_code import OAuthCodeRow
from fulcrum_core.data.models.oauth_refresh_token import OAuthRefreshTokenRow
from fulcrum_core.data.types import utcnow
from fulcrum_core.oauth.clients import hash_secret
from fulcrum_core.oauth.refresh import GRACE_REUSES
from fulcrum_core.oauth.server import oauth_server
from fulcrum_core.settings import Settings
from sqlalchemy import update

from .conftest import CUSTOMER, ISSUER, REDIRECT, pkce_pair, submit_consent

pytestmark = pytest.mark.anyio


def _authorize_url(**overrides: str | None) -> str:
    params = {
        "response_type": "code",
        "client_id": "fulcrum-app",
        "redirect_uri": REDIRECT,
        "scope": "home:read",
        "state": "s-1",
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def _redirect_query(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return parse_qs(urlsplit(location).query)


async def _code(
    consent: Callable[..., Awaitable[httpx.Response]], challenge: str, scope: str = "home:read"
) -> str:
    query = _redirect_query(await consent(_authorize_url(code_challenge=challenge, scope=scope)))
    return query["code"][0]


async def _redeem(browser: httpx.AsyncClient, code: str, verifier: str | None) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "client_id": "fulcrum-app",
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return await browser.post("/oauth/token", data=data)


def _error(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    error: str = response.json()["error"]
    return error


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://evil.example/callback",
        "http://127.0.0.1:8765/call",
        REDIRECT + "/",
        REDIRECT + "x",
        REDIRECT.upper(),
    ],
    ids=["unregistered", "prefix", "trailing-slash", "extended", "case"],
)
async def test_redirect_uri_must_match_exactly(browser: httpx.AsyncClient, redirect_uri: str) -> None:
    """A redirect URI that is not one registered string is refused on the page, never redirected to."""
    r = await browser.get(_authorize_url(redirect_uri=redirect_uri))
    assert _error(r) == "invalid_request"
    assert "location" not in r.headers


def test_the_apps_redirect_uris_follow_the_setting_across_restarts(make_app: Callable[..., Any]) -> None:
    """The app's client took its redirect URIs from ``oauth_app_redirect_uris`` when it was first
    registered and kept them: a URI the operator dropped (the default's loopback one, where another app on
    the phone may listen) was still redirected to after a restart, and one added was refused."""
    added = "https://app.bank.example/oauth/callback"
    first = make_app(oauth_dev_login=True)  # the defaults: the app's scheme and the loopback URI
    assert first.client.get(_authorize_url(), follow_redirects=False).status_code == 200
    later = make_app(oauth_dev_login=True, oauth_app_redirect_uris=("fulcrum-app://oauth/callback", added))
    dropped = later.client.get(_authorize_url(), follow_redirects=False)
    assert _error(dropped) == "invalid_request"
    assert "location" not in dropped.headers
    assert later.client.get(_authorize_url(redirect_uri=added), follow_redirects=False).status_code == 200


async def test_missing_redirect_uri_is_refused(browser: httpx.AsyncClient) -> None:
    """No redirect URI means no default one: the request is refused without a redirect."""
    r = await browser.get(_authorize_url(redirect_uri=None))
    assert _error(r) == "invalid_request"


async def test_unknown_client_is_refused(browser: httpx.AsyncClient) -> None:
    """An unregistered client id is ``invalid_client`` and nothing is redirected."""
    r = await browser.get(_authorize_url(client_id="nobody"))
    assert _error(r) == "invalid_client"
    assert "location" not in r.headers


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"code_challenge": None, "code_challenge_method": None}, "missing"),
        ({"code_challenge_method": "plain"}, "plain"),
        ({"code_challenge_method": None}, "method defaults to plain"),
    ],
    ids=["missing", "plain", "no-method"],
)
async def test_pkce_s256_is_required(
    browser: httpx.AsyncClient, overrides: dict[str, str | None], why: str
) -> None:
    """Without an S256 challenge the client is sent back ``invalid_request`` (with state and iss)."""
    query = _redirect_query(await browser.get(_authorize_url(**overrides)))
    assert query["error"] == ["invalid_request"], why
    assert query["state"] == ["s-1"]
    assert query["iss"] == [ISSUER]


async def test_implicit_grant_is_unsupported(browser: httpx.AsyncClient) -> None:
    """``response_type=token`` (implicit) is ``unsupported_response_type``."""
    query = _redirect_query(await browser.get(_authorize_url(response_type="token")))
    assert query["error"] == ["unsupported_response_type"]


async def test_password_grant_is_unsupported(browser: httpx.AsyncClient) -> None:
    """The resource owner password grant does not exist here."""
    r = await browser.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": CUSTOMER,
            "password": "x",
            "client_id": "fulcrum-app",
        },
    )
    assert _error(r) == "unsupported_grant_type"


async def test_denied_consent_redirects_access_denied(
    consent: Callable[..., Awaitable[httpx.Response]],
) -> None:
    """Refusing on the consent page sends ``access_denied`` with state and iss."""
    query = _redirect_query(await consent(_authorize_url(), decision="deny"))
    assert query["error"] == ["access_denied"]
    assert query["iss"] == [ISSUER]


async def test_wrong_verifier(
    browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """A verifier that does not hash to the challenge is ``invalid_grant``."""
    _, challenge = pkce_pair()
    code = await _code(consent, challenge)
    assert _error(await _redeem(browser, code, pkce_pair()[0])) == "invalid_grant"


async def test_missing_verifier(
    browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """Redeeming without a verifier is ``invalid_request``."""
    code = await _code(consent, pkce_pair()[1])
    assert _error(await _redeem(browser, code, None)) == "invalid_request"


async def test_verifier_without_challenge(oauth_app: Any, browser: httpx.AsyncClient) -> None:
    """A verifier for a code issued without a challenge is ``invalid_request`` (RFC 9700 §4.8)."""
    server = oauth_server(oauth_app.runtime)
    server.codes.save(
        "legacy-code",
        client_id="fulcrum-app",
        subject=CUSTOMER,
        subject_kind="customer",
        redirect_uri=REDIRECT,
        scope="home:read",
        code_challenge="",
        code_challenge_method="",
    )
    assert _error(await _redeem(browser, "legacy-code", pkce_pair()[0])) == "invalid_request"


async def test_code_reuse_is_refused_and_revokes_the_family(
    browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """A code redeemed twice is ``invalid_grant``, and the refresh token of the first use dies too."""
    verifier, challenge = pkce_pair()
    code = await _code(consent, challenge)
    first = await _redeem(browser, code, verifier)
    assert first.status_code == 200
    assert _error(await _redeem(browser, code, verifier)) == "invalid_grant"
    refresh = await browser.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": first.json()["refresh_token"],
            "client_id": "fulcrum-app",
        },
    )
    assert _error(refresh) == "invalid_grant"


async def test_expired_code(
    oauth_app: Any, browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """A code older than 60 seconds is ``invalid_grant``."""
    verifier, challenge = pkce_pair()
    code = await _code(consent, challenge)
    with oauth_app.runtime.db.session() as session:
        session.execute(
            update(OAuthCodeRow)
            .where(OAuthCodeRow.code_hash == hash_secret(code))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert _error(await _redeem(browser, code, verifier)) == "invalid_grant"


async def test_code_lives_at_most_sixty_seconds(
    oauth_app: Any, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """The stored expiry of a fresh code is no more than 60 seconds away."""
    code = await _code(consent, pkce_pair()[1])
    with oauth_app.runtime.db.read_session() as session:
        row = session.get(OAuthCodeRow, hash_secret(code))
        assert row is not None
        assert row.expires_at - utcnow() <= timedelta(seconds=60)


async def _tokens(
    browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]], scope: str
) -> Any:
    verifier, challenge = pkce_pair()
    r = await _redeem(browser, await _code(consent, challenge, scope), verifier)
    assert r.status_code == 200, r.text
    return r.json()


async def _refresh(browser: httpx.AsyncClient, token: str, **extra: str) -> httpx.Response:
    return await browser.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": "fulcrum-app",
            **extra,
        },
    )


async def test_scope_escalation_on_refresh(
    browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """Asking a refresh for more than the original grant is ``invalid_scope``; narrowing is fine."""
    tokens = await _tokens(browser, consent, "home:read search:read")
    escalated = await _refresh(browser, tokens["refresh_token"], scope="home:read transactions:write")
    assert _error(escalated) == "invalid_scope"
    narrowed = await _refresh(browser, tokens["refresh_token"], scope="home:read")
    assert narrowed.status_code == 200
    assert narrowed.json()["scope"] == "home:read"


async def test_a_narrower_refresh_narrows_the_access_token_not_the_grant(
    browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """Asking a refresh for fewer scopes gives an access token of those, and a refresh token of the
    whole grant still (RFC 6749 section 6: a new refresh token's scope is the presented one's). The new
    refresh token carried the narrower scope, so the app lost the rest of what the customer allowed."""
    tokens = await _tokens(browser, consent, "home:read search:read")
    narrowed = await _refresh(browser, tokens["refresh_token"], scope="home:read")
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "home:read"
    plain = await _refresh(browser, narrowed.json()["refresh_token"])
    assert plain.status_code == 200, plain.text
    assert plain.json()["scope"] == "home:read search:read"
    wide = await _refresh(browser, plain.json()["refresh_token"], scope="search:read")
    assert wide.status_code == 200, wide.text
    assert wide.json()["scope"] == "search:read"


GRACE = Settings().refresh_reuse_grace_seconds


def _spent_long_ago(app: Any, token: str) -> None:
    """Date ``token``'s rotation a second before its grace period began (as if spent that long ago)."""
    with app.runtime.db.session() as session:
        session.execute(
            update(OAuthRefreshTokenRow)
            .where(OAuthRefreshTokenRow.token_hash == hash_secret(token))
            .values(rotated_at=utcnow() - timedelta(seconds=GRACE + 1))
        )


async def test_refresh_reuse_revokes_the_family(
    oauth_app: Any, browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """A refresh token repeated within its grace period is fine; replayed once that period is over it
    is ``invalid_grant`` and kills the tokens it was rotated into."""
    tokens = await _tokens(browser, consent, "home:read")
    rotated = await _refresh(browser, tokens["refresh_token"])
    assert rotated.status_code == 200
    repeated = await _refresh(browser, tokens["refresh_token"])
    assert repeated.status_code == 200, repeated.text
    _spent_long_ago(oauth_app, tokens["refresh_token"])
    assert _error(await _refresh(browser, tokens["refresh_token"])) == "invalid_grant"
    assert _error(await _refresh(browser, rotated.json()["refresh_token"])) == "invalid_grant"
    assert _error(await _refresh(browser, repeated.json()["refresh_token"])) == "invalid_grant"


async def test_a_retried_refresh_within_the_grace_period_gets_tokens_of_the_same_family(
    browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """The app retries a refresh whose answer a timeout lost: the repeat within the grace period gets a
    new access and refresh token, and the successor the lost answer carried stays valid too. One
    repeat more than ``GRACE_REUSES`` is a reuse and logs the family out, both branches with it."""
    tokens = await _tokens(browser, consent, "home:read")
    answers = [await _refresh(browser, tokens["refresh_token"]) for _ in range(1 + GRACE_REUSES)]
    assert [a.status_code for a in answers] == [200] * (1 + GRACE_REUSES), [a.text for a in answers]
    successors = [a.json()["refresh_token"] for a in answers]
    assert len(set(successors)) == len(successors)
    assert all(a.json()["access_token"] and a.json()["scope"] == "home:read" for a in answers)
    onwards = [await _refresh(browser, successor) for successor in successors]
    assert [a.status_code for a in onwards] == [200] * len(successors)
    assert _error(await _refresh(browser, tokens["refresh_token"])) == "invalid_grant"
    for answer in onwards:
        assert _error(await _refresh(browser, answer.json()["refresh_token"])) == "invalid_grant"


async def test_two_refreshes_at_once_with_one_token_both_succeed(
    make_app: Callable[..., Any], database_url: str
) -> None:
    """Two screens waking together send one refresh token at once (a barrier in the store holds each
    request until both have got there): both get new tokens, and the customer stays logged in (both
    new refresh tokens work)."""
    app = make_app(oauth_dev_login=True, database_url=database_url)
    store = oauth_server(app.runtime).refresh_tokens
    rotate = store.rotate
    barrier = threading.Barrier(2)

    def together(*args: Any, **kwargs: Any) -> Any:
        barrier.wait(timeout=10)
        return rotate(*args, **kwargs)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.client.app), base_url=ISSUER) as http:

        async def consent(url: str) -> httpx.Response:
            return await submit_consent(http, url)

        tokens = await _tokens(http, consent, "home:read")
        with mock.patch.object(store, "rotate", together):
            answers = await asyncio.gather(*(_refresh(http, tokens["refresh_token"]) for _ in range(2)))
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        for answer in answers:
            bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
            home = await http.get("/v1/home", headers=bearer)
            assert home.status_code == 200, home.text
            assert (await _refresh(http, answer.json()["refresh_token"])).status_code == 200


async def test_without_a_grace_period_a_repeat_revokes_the_family(
    make_app: Callable[..., Any],
) -> None:
    """With ``refresh_reuse_grace_seconds`` 0 rotation is strict: the second use of a token, however
    soon, is ``invalid_grant`` and kills the token the first use returned."""
    app = make_app(oauth_dev_login=True, refresh_reuse_grace_seconds=0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app.client.app), base_url=ISSUER) as http:

        async def consent(url: str) -> httpx.Response:
            return await submit_consent(http, url)

        tokens = await _tokens(http, consent, "home:read")
        rotated = await _refresh(http, tokens["refresh_token"])
        assert rotated.status_code == 200
        assert _error(await _refresh(http, tokens["refresh_token"])) == "invalid_grant"
        assert _error(await _refresh(http, rotated.json()["refresh_token"])) == "invalid_grant"


def test_the_grace_period_is_a_setting_read_from_the_environment() -> None:
    """``FULCRUM_REFRESH_REUSE_GRACE_SECONDS`` sets it (default 10 seconds, 0 allowed: strict
    rotation); negative or more than a minute is refused naming the variable."""
    from fulcrum_core.settings import SettingsError, load_settings

    assert load_settings(environ={}).refresh_reuse_grace_seconds == 10
    for value in (0, 60):
        env = {"FULCRUM_REFRESH_REUSE_GRACE_SECONDS": str(value)}
        assert load_settings(environ=env).refresh_reuse_grace_seconds == value
    for bad in ("-1", "61", "soon"):
        with pytest.raises(SettingsError, match="FULCRUM_REFRESH_REUSE_GRACE_SECONDS"):
            load_settings(environ={"FULCRUM_REFRESH_REUSE_GRACE_SECONDS": bad})


async def test_a_repeat_asking_beyond_the_grant_is_invalid_scope(
    browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """Within the grace period a repeat is checked like a first use: more than the original scope is
    ``invalid_scope`` and uses up none of the token's repeats; a narrower one is granted."""
    tokens = await _tokens(browser, consent, "home:read search:read")
    assert (await _refresh(browser, tokens["refresh_token"])).status_code == 200
    for _ in range(GRACE_REUSES + 1):
        escalated = await _refresh(browser, tokens["refresh_token"], scope="home:read transactions:write")
        assert _error(escalated) == "invalid_scope"
    narrowed = await _refresh(browser, tokens["refresh_token"], scope="home:read")
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "home:read"


async def test_revoked_refresh_token(
    browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """After RFC 7009 revocation the refresh token is ``invalid_grant``; revoking twice is still 200."""
    tokens = await _tokens(browser, consent, "home:read")
    data = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": "fulcrum-app"}
    assert (await browser.post("/oauth/revoke", data=data)).status_code == 200
    assert (await browser.post("/oauth/revoke", data=data)).status_code == 200
    assert _error(await _refresh(browser, tokens["refresh_token"])) == "invalid_grant"


async def test_another_clients_refresh_token(
    oauth_app: Any, browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """A refresh token presented by another client is ``invalid_grant``, even within the grace period
    of a token the app has just spent: the token leaked, and its family is revoked."""
    server = oauth_server(oauth_app.runtime)
    server.clients.register(
        "other-app",
        kind="app",
        name_zh="其他应用",
        auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        scopes=["home:read"],
        redirect_uris=[REDIRECT],
    )
    tokens = await _tokens(browser, consent, "home:read")
    assert _error(await _refresh(browser, tokens["refresh_token"], client_id="other-app")) == "invalid_grant"
    assert _error(await _refresh(browser, tokens["refresh_token"])) == "invalid_grant"
    spent = await _tokens(browser, consent, "home:read")
    rotated = await _refresh(browser, spent["refresh_token"])
    assert rotated.status_code == 200
    assert _error(await _refresh(browser, spent["refresh_token"], client_id="other-app")) == "invalid_grant"
    assert _error(await _refresh(browser, rotated.json()["refresh_token"])) == "invalid_grant"
    assert _error(await _refresh(browser, spent["refresh_token"])) == "invalid_grant"


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize(
    "credentials", [b"\xff\xfe:\xff", b"plugin-x:\xff", b"\xc3(:secret"], ids=["both", "secret", "id"]
)
async def test_basic_credentials_that_are_not_utf8_are_invalid_client(
    browser: httpx.AsyncClient, path: str, credentials: bytes
) -> None:
    """HTTP Basic credentials that do not decode as UTF-8 are a failed client authentication (401
    ``invalid_client``), not a server error."""
    import base64

    response = await browser.post(
        path,
        data={"grant_type": "client_credentials", "token": "t"},
        headers={"Authorization": "Basic " + base64.b64encode(credentials).decode()},
    )
    assert _error(response, 401) == "invalid_client"


async def test_a_revocation_naming_the_token_twice_is_refused_and_revokes_nothing(
    browser: httpx.AsyncClient, consent: Callable[..., Awaitable[httpx.Response]]
) -> None:
    """``token=junk&token=<the real one>`` is ``invalid_request`` naming the parameter, and the real
    token still works: answering 200 (authlib read the first value) told the client its logout worked."""
    tokens = await _tokens(browser, consent, "home:read")
    body = urlencode([("client_id", "fulcrum-app"), ("token", "junk"), ("token", tokens["refresh_token"])])
    r = await browser.post(
        "/oauth/revoke", content=body, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert _error(r) == "invalid_request"
    assert "'token' is sent more than once" in r.json()["error_description"]
    assert r.headers["cache-control"] == "no-store"
    assert (await _refresh(browser, tokens["refresh_token"])).status_code == 200


_CLIENT_CREDENTIALS = [("grant_type", "client_credentials"), ("client_id", "fulcrum-app"), ("token", "t")]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize("repeated", ["grant_type", "client_id", "token"])
async def test_a_back_channel_parameter_sent_twice_is_invalid_request(
    browser: httpx.AsyncClient, path: str, repeated: str
) -> None:
    """Every parameter of the token, revocation and introspection endpoints is sent at most once
    (RFC 6749 sections 3.1 and 3.2), even twice with the same value."""
    pairs = [*_CLIENT_CREDENTIALS, *[(k, v) for k, v in _CLIENT_CREDENTIALS if k == repeated]]
    r = await browser.post(
        path, content=urlencode(pairs), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert _error(r) == "invalid_request"
    assert f"{repeated!r} is sent more than once" in r.json()["error_description"]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
async def test_back_channel_parameters_in_the_url_are_invalid_request(
    browser: httpx.AsyncClient, path: str
) -> None:
    """Parameters in the URL are refused, naming them, even with a valid form (RFC 6749 sections 2.3.1
    and 3.2): a grant sent only in the query string was honoured."""
    r = await browser.post(path + "?grant_type=client_credentials&client_secret=s", data={"token": "t"})
    assert _error(r) == "invalid_request"
    assert "found: client_secret, grant_type" in r.json()["error_description"]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("application/json", "not application/json"),
        ("text/plain; charset=utf-8", "not text/plain"),
        ("multipart/form-data; boundary=x", "not multipart/form-data"),
        (None, "not no content type"),
    ],
    ids=["json", "text", "multipart", "none"],
)
async def test_a_back_channel_body_that_is_not_a_form_is_invalid_request(
    browser: httpx.AsyncClient, path: str, content_type: str | None, named: str
) -> None:
    """A body of another media type is ``invalid_request`` naming it, not ``unsupported_grant_type``
    as though the form had been read and found empty."""
    headers = {"content-type": content_type} if content_type else {}
    r = await browser.post(path, content=urlencode(_CLIENT_CREDENTIALS), headers=headers)
    assert _error(r) == "invalid_request"
    assert named in r.json()["error_description"]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize("charset", ["latin-1", '"ISO-8859-1"', "utf-16"])
async def test_a_back_channel_form_in_another_charset_is_invalid_request_naming_it(
    browser: httpx.AsyncClient, path: str, charset: str
) -> None:
    """A form is UTF-8 (RFC 6749 appendix B): one declared in another charset, holding an escape that
    reads otherwise in it (``%E9``), is ``invalid_request`` naming that charset, where it was decoded as
    UTF-8 regardless."""
    headers = {"content-type": f"application/x-www-form-urlencoded; charset={charset}"}
    form = urlencode([*_CLIENT_CREDENTIALS, ("scope", "caf\xe9")], encoding="latin-1")
    r = await browser.post(path, content=form, headers=headers)
    assert _error(r) == "invalid_request"
    assert f"charset {charset.strip(chr(34))!r}" in r.json()["error_description"]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize("charset", ["ISO-8859-1", "latin-1", "US-ASCII", "windows-1252"])
async def test_an_ascii_form_declared_in_an_ascii_compatible_charset_is_read(
    browser: httpx.AsyncClient, path: str, charset: str
) -> None:
    """A form whose bytes and escapes are all ASCII reads the same in UTF-8 as in ISO-8859-1, which
    common HTTP clients declare by default (Apache HttpClient 4's form entity): it is read, not refused
    for a charset that changes nothing."""
    headers = {"content-type": f"application/x-www-form-urlencoded; charset={charset}"}
    r = await browser.post(path, content=urlencode(_CLIENT_CREDENTIALS), headers=headers)
    assert "charset" not in r.json().get("error_description", ""), r.text


@pytest.mark.parametrize("charset", ["utf-8", '"UTF-8"', "UTF8"])
async def test_a_back_channel_form_declared_utf8_is_read(browser: httpx.AsyncClient, charset: str) -> None:
    """``charset=utf-8`` in any spelling of UTF-8 is read: the form is refused for its grant, not its
    charset."""
    headers = {"content-type": f"application/x-www-form-urlencoded; charset={charset}"}
    r = await browser.post("/oauth/token", content=urlencode(_CLIENT_CREDENTIALS), headers=headers)
    assert "charset" not in r.json().get("error_description", ""), r.text


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize(("form", "named"), [("client_id=%FF", "form parameter 'client_id'"),
                                             ("%FF=x", "a form parameter's name")])
async def test_a_back_channel_form_of_bytes_that_are_no_text_is_invalid_request(
    browser: httpx.AsyncClient, path: str, form: str, named: str
) -> None:
    """``client_id=%FF`` was read with a replacement character and refused as "client '?'": a form
    parameter that is not UTF-8 once percent-decoded is ``invalid_request`` naming it."""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    r = await browser.post(path, content=f"grant_type=client_credentials&{form}", headers=headers)
    assert _error(r) == "invalid_request"
    assert f"{named} is not UTF-8 text once percent-decoded" in r.json()["error_description"]


async def test_a_consent_decision_of_bytes_that_are_no_text_is_400_naming_it(
    browser: httpx.AsyncClient,
) -> None:
    """On the consent form the same is a 400 naming the parameter, before its CSRF token is read."""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    r = await browser.post("/oauth/authorize", content="decision=%E5%85", headers=headers)
    assert (r.status_code, r.json()["field"]) == (400, "decision"), r.text


async def test_a_consent_decision_in_another_charset_is_415_naming_it(browser: httpx.AsyncClient) -> None:
    """The consent form's decision declared in Latin-1 is a 415 naming the charset and ``Content-Type``,
    before its CSRF token is read (it was decoded as UTF-8)."""
    headers = {"content-type": "application/x-www-form-urlencoded; charset=latin-1"}
    r = await browser.post("/oauth/authorize", content="decision=allow&note=caf%E9", headers=headers)
    assert r.status_code == 415, r.text
    assert r.json()["field"] == "Content-Type"
    assert "charset 'latin-1'" in r.json()["detail"]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect", "/oauth/authorize"])
async def test_an_oauth_form_past_its_size_is_413_unread(browser: httpx.AsyncClient, path: str) -> None:
    """A form larger than the OAuth endpoints read is a 413 naming the limit; it was read whole and
    then taken for an empty form."""
    from fulcrum_core.oauth.adapter import MAX_BODY

    big = urlencode([*_CLIENT_CREDENTIALS, ("pad", "x" * MAX_BODY)])
    r = await browser.post(path, content=big, headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413, r.text
    fitting = urlencode([*_CLIENT_CREDENTIALS, ("pad", "x" * (MAX_BODY - 200))])
    assert len(fitting) <= MAX_BODY
    r = await browser.post(
        path, content=fitting, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code != 413


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
async def test_a_back_channel_authorization_header_sent_twice_is_invalid_request(
    browser: httpx.AsyncClient, path: str
) -> None:
    """Two Authorization headers (client credentials, RFC 6749 section 2.3.1) are ``invalid_request``
    naming the header, as the API's routes refuse them: the header is no list (RFC 9110 section 11.6.2),
    and a proxy reading the first where the host read the last would judge other credentials."""
    basic = [("Authorization", "Basic " + base64.b64encode(f"{who}:s".encode()).decode()) for who in "ab"]
    for headers in (basic, basic[::-1], [basic[0], basic[0]]):
        r = await browser.post(
            path, content=urlencode([("grant_type", "client_credentials"), ("token", "t")]),
            headers=[("content-type", "application/x-www-form-urlencoded"), *headers],
        )
        assert _error(r) == "invalid_request"
        assert "the Authorization header is sent 2 times" in r.json()["error_description"]
