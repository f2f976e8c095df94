"""The bank's identity provider: the JWT bearer grant (RFC 7523) and the consent page's login.

The app trades an assertion of the bank's IdP for tokens; the app's webview signs the customer in
to the consent page with one, so a partner's code flow works without the development login.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import msgspec
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc7523 import JWTBearerGrant, PrivateKeyJWT
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.models.oauth_assertion import OAuthAssertionIdRow
from fulcrum_core.data.types import utcnow
from fulcrum_core.oauth import login_session
from fulcrum_core.oauth.idp import IdentityProvider
from fulcrum_core.oauth.plugin_clients import PluginClientPolicy, sync_plugin_clients
from fulcrum_core.oauth.used_ids import AssertionIds
from fulcrum_core.settings import Deadlines, OAuthIdp, SettingsError, load_settings
from joserfc.jwk import ECKey, OKPKey, RSAKey

from .conftest import CUSTOMER, ISSUER, REDIRECT, form_fields, pkce_pair
from .test_consents import _partner_plugin


def _never(claims: login_session.LoginClaims) -> bool:
    """No cookie was signed out."""
    return False

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

pytestmark = pytest.mark.anyio

IDP = "https://login.bank.example"
TOKEN_URL = f"{ISSUER}/oauth/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PARTNER = "fund-partner"


def _key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"alg": "ES256"}, auto_kid=True)


def sign(
    key: Any,
    *,
    sub: str | None = CUSTOMER,
    iss: str = IDP,
    aud: str = TOKEN_URL,
    seconds: int = 120,
    issued_at: int | None = None,
    claims: dict[str, Any] | None = None,
    alg: str = "ES256",
) -> str:
    """An assertion of the IdP (authlib's own signer), ``seconds`` long from ``issued_at`` (now)."""
    return JWTBearerGrant.sign(
        key,
        iss,
        aud,
        subject=sub,
        issued_at=issued_at or int(time.time()),
        expires_in=seconds,
        claims=claims,
        header={"alg": alg, "kid": key.kid},
    )


def _write_jwks(path: Path, *keys: Any) -> str:
    path.write_text(json.dumps({"keys": [k.as_dict(private=False) for k in keys]}), encoding="utf-8")
    return str(path)


@pytest.fixture
def idp_key() -> ECKey:
    """The IdP's signing key; its public half is in the JWKS file the host trusts."""
    return _key()


@pytest.fixture
def idp(tmp_path: Path, idp_key: ECKey) -> OAuthIdp:
    """Settings trusting the IdP through a JWKS file."""
    return OAuthIdp(issuer=IDP, jwks=_write_jwks(tmp_path / "idp-jwks.json", idp_key))


@pytest.fixture
def idp_app(make_app: Callable[..., Any], idp: OAuthIdp) -> Any:
    """The app with the IdP configured and the development login off, as in production."""
    return make_app(oauth_idp=idp)


async def _grant(oauth_client: Callable[..., Any], app: Any, assertion: str, **kwargs: Any) -> dict[str, Any]:
    client = oauth_client(app.client.app, **kwargs.pop("client", {}))
    token: dict[str, Any] = await client.fetch_token(
        TOKEN_URL, grant_type=JWT_BEARER, assertion=assertion, **kwargs
    )
    return token


async def _refused(oauth_client: Callable[..., Any], app: Any, assertion: str, **kwargs: Any) -> OAuthError:
    with pytest.raises(OAuthError) as refused:
        await _grant(oauth_client, app, assertion, **kwargs)
    return refused.value


# -- the token grant: unhappy paths first ----------------------------------------------------------


async def test_an_assertion_signed_by_another_key_is_refused(
    idp_app: Any, oauth_client: Callable[..., Any]
) -> None:
    """A key the IdP's JWKS does not hold (even under the IdP's kid) signs nothing that is accepted."""
    forged = _key()
    forged_with_kid = ECKey.import_key(forged.as_dict(private=True) | {"kid": "x"})
    for key in (forged, forged_with_kid):
        error = await _refused(oauth_client, idp_app, sign(key))
        assert error.error == "invalid_grant"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"iss": "https://evil.example"}, "iss"),
        ({"aud": "https://elsewhere.example/oauth/token"}, "aud"),
        ({"seconds": 3600}, "expire within 300 seconds"),
        ({"issued_at": int(time.time()) - 600, "seconds": 120}, "exp"),
        ({"sub": None}, "sub"),
        ({"sub": "c" * 65}, "sub"),
        ({"claims": {"jti": ""}}, "jti"),
    ],
    ids=["wrong-issuer", "wrong-audience", "too-long", "expired", "no-sub", "sub-too-long", "no-jti"],
)
async def test_a_bad_assertion_is_invalid_grant(
    idp_app: Any, oauth_client: Callable[..., Any], idp_key: ECKey, changes: dict[str, Any], says: str
) -> None:
    """Wrong iss or aud, expired or too long-lived, no customer, no jti: ``invalid_grant`` saying so."""
    error = await _refused(oauth_client, idp_app, sign(idp_key, **changes))
    assert error.error == "invalid_grant"
    assert says in (error.description or ""), error.description


async def test_an_unknown_customer_is_refused(
    idp_app: Any, oauth_client: Callable[..., Any], idp_key: ECKey
) -> None:
    """The assertion verifies but names no customer the bank's data provider knows."""
    error = await _refused(oauth_client, idp_app, sign(idp_key, sub="c-nobody"))
    assert (error.error, error.description) == (
        "invalid_grant",
        "the assertion's sub names no customer of the bank",
    )


async def test_a_client_not_named_in_the_settings_may_not_use_the_grant(
    make_app: Callable[..., Any], idp: OAuthIdp, oauth_client: Callable[..., Any], idp_key: ECKey
) -> None:
    """``oauth_idp.clients`` decides; a refused client leaves the assertion unspent."""
    app = make_app(oauth_idp=msgspec.structs.replace(idp, clients=("another-app",)))
    assertion = sign(idp_key)
    error = await _refused(oauth_client, app, assertion)
    assert error.error == "unauthorized_client"
    assert "oauth_idp.clients" in (error.description or "")
    app2 = make_app(oauth_idp=idp)  # the same database, the app allowed: the assertion still works once
    assert (await _grant(oauth_client, app2, assertion))["access_token"]


async def test_a_partner_client_may_not_use_the_grant_even_when_named(
    make_app: Callable[..., Any], idp: OAuthIdp, idp_key: ECKey
) -> None:
    """A partner would learn the customer number: refused whatever the settings say."""
    app = make_app(oauth_idp=msgspec.structs.replace(idp, clients=("fulcrum-app", f"plugin-{PARTNER}")))
    partner_key = _register_partner(app)
    client = _partner_backend(app, partner_key)
    with pytest.raises(OAuthError) as refused:
        await client.fetch_token(TOKEN_URL, grant_type=JWT_BEARER, assertion=sign(idp_key))
    assert refused.value.error == "unauthorized_client"
    await client.aclose()


async def test_scopes_beyond_the_clients_are_refused_before_the_assertion_is_spent(
    idp_app: Any, oauth_client: Callable[..., Any], idp_key: ECKey
) -> None:
    """No ``holdings:read`` (nor a staff scope) for the app: ``invalid_scope``; the assertion stays usable."""
    assertion = sign(idp_key)
    for scope in ("home:read holdings:read", "registry:review"):
        error = await _refused(oauth_client, idp_app, assertion, scope=scope)
        assert error.error == "invalid_scope", error.description
    token = await _grant(oauth_client, idp_app, assertion, scope="home:read")
    assert token["scope"] == "home:read"


async def test_without_an_idp_the_grant_is_unsupported(
    oauth_app: Any, oauth_client: Callable[..., Any]
) -> None:
    """No ``oauth_idp.issuer``: the grant type is not offered, in the metadata or at the endpoint."""
    error = await _refused(oauth_client, oauth_app, sign(_key()))
    assert error.error == "unsupported_grant_type"
    assert (
        JWT_BEARER
        not in oauth_app.client.get("/.well-known/oauth-authorization-server").json()["grant_types_supported"]
    )


async def test_a_replayed_assertion_is_refused_by_every_worker(
    make_app: Callable[..., Any],
    idp: OAuthIdp,
    oauth_client: Callable[..., Any],
    idp_key: ECKey,
    database_url: str,
) -> None:
    """The ``jti`` is kept in the database: a second worker on it refuses the assertion the first accepted."""
    first = make_app(oauth_idp=idp, database_url=database_url)
    second = make_app(oauth_idp=idp, database_url=database_url)  # another runtime: another worker
    assertion = sign(idp_key)
    assert (await _grant(oauth_client, first, assertion))["access_token"]
    for worker in (first, second):
        error = await _refused(oauth_client, worker, assertion)
        assert (error.error, error.description) == (
            "invalid_grant",
            "the assertion was already used (its jti was seen before)",
        )


# -- the token grant: what it gives -------------------------------------------------------------------


async def test_the_app_trades_the_banks_login_for_tokens_as_the_code_flow_gives(
    make_app: Callable[..., Any],
    idp: OAuthIdp,
    oauth_client: Callable[..., Any],
    idp_key: ECKey,
    database_url: str,
) -> None:
    """Access and refresh token for the customer, the client's scopes when none are asked; refresh rotates."""
    app = make_app(oauth_idp=idp, database_url=database_url)
    meta = app.client.get("/.well-known/oauth-authorization-server").json()
    assert JWT_BEARER in meta["grant_types_supported"]
    client = oauth_client(app.client.app)
    token = await client.fetch_token(TOKEN_URL, grant_type=JWT_BEARER, assertion=sign(idp_key))
    assert token["token_type"] == "Bearer"
    assert set(token["scope"].split()) == {
        "consents:read",
        "consents:write",
        "feeds:read",
        "home:read",
        "pages:read",
        "search:read",
        "transactions:read",
        "transactions:write",
    }
    principal = app.runtime.tokens.verify(token["access_token"])
    assert (principal.sub, principal.kind, principal.client_id) == (CUSTOMER, "customer", "fulcrum-app")
    assert (await client.get("/v1/home")).status_code == 200
    refreshed = await client.refresh_token(TOKEN_URL)
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert app.runtime.tokens.verify(refreshed["access_token"]).sub == CUSTOMER


async def test_pem_public_keys_are_trusted_too(
    make_app: Callable[..., Any], oauth_client: Callable[..., Any]
) -> None:
    """``public_keys`` (PEM, here RSA) instead of a JWKS; the assertion's kid may be absent."""
    key = RSAKey.generate_key(2048)
    app = make_app(oauth_idp=OAuthIdp(issuer=IDP, public_keys=(key.as_pem(private=False).decode(),)))
    assertion = JWTBearerGrant.sign(
        key, IDP, TOKEN_URL, subject=CUSTOMER, expires_in=60, header={"alg": "RS256"}
    )
    assert (await _grant(oauth_client, app, assertion))["access_token"]


@pytest.mark.parametrize(
    ("make_key", "alg"),
    [
        (lambda: ECKey.generate_key("P-384"), "ES384"),
        (lambda: OKPKey.generate_key("Ed25519"), "Ed25519"),
        pytest.param(
            lambda: OKPKey.generate_key("Ed25519"), "EdDSA",
            marks=pytest.mark.filterwarnings("ignore:EdDSA is deprecated:joserfc.errors.SecurityWarning"),
        ),
        (lambda: RSAKey.generate_key(2048), "PS256"),
    ],
    ids=["ES384", "Ed25519", "EdDSA", "PS256"],
)
async def test_the_idp_signs_with_any_key_kind_it_may_have(
    make_app: Callable[..., Any], oauth_client: Callable[..., Any], make_key: Callable[[], Any], alg: str
) -> None:
    """The IdP's keys may be RSA, EC or Ed25519, yet its assertions were verified with ES256, RS256
    and HS256 alone: one signed EdDSA, ES384 or PS256 was refused ("is not recommended")."""
    key = make_key()
    app = make_app(oauth_idp=OAuthIdp(issuer=IDP, public_keys=(key.as_pem(private=False).decode(),)))
    assertion = JWTBearerGrant.sign(key, IDP, TOKEN_URL, subject=CUSTOMER, expires_in=60, header={"alg": alg})
    assert (await _grant(oauth_client, app, assertion))["access_token"]


async def test_an_idp_assertion_signed_with_a_shared_secret_is_refused(
    make_app: Callable[..., Any], oauth_client: Callable[..., Any]
) -> None:
    """HMAC is never accepted, not even keyed with the IdP's public key (algorithm confusion)."""
    key = RSAKey.generate_key(2048)
    pem = key.as_pem(private=False)
    app = make_app(oauth_idp=OAuthIdp(issuer=IDP, public_keys=(pem.decode(),)))
    now = int(time.time())
    claims = {"iss": IDP, "sub": CUSTOMER, "aud": TOKEN_URL, "iat": now, "exp": now + 60, "jti": "forged"}
    parts = ({"alg": "HS256"}, claims)
    signing = b".".join(base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=") for part in parts)
    mac = base64.urlsafe_b64encode(hmac.new(pem, signing, hashlib.sha256).digest()).rstrip(b"=")
    forged = (signing + b"." + mac).decode()
    assert (await _refused(oauth_client, app, forged)).error == "invalid_grant"


def test_the_jwks_is_read_again_for_a_key_id_it_lacks(tmp_path: Path, sqlite_db: Database) -> None:
    """The IdP rotates its key: an assertion naming the new kid makes the host read the JWKS again."""
    old, new = _key(), _key()
    path = tmp_path / "jwks.json"
    now = [1000.0]
    idp = IdentityProvider(
        OAuthIdp(issuer=IDP, jwks=_write_jwks(path, old)),
        issuer=ISSUER,
        db=sqlite_db,
        customer_exists=lambda _ref: True,
        clock=lambda: now[0],
    )
    assert [k.kid for k in idp.key_set(old.kid).keys] == [old.kid]
    _write_jwks(path, old, new)
    assert [k.kid for k in idp.key_set(new.kid).keys] == [old.kid]  # read under a second ago: not again
    now[0] += 2
    assert {k.kid for k in idp.key_set(new.kid).keys} == {old.kid, new.kid}


def test_a_slow_jwks_read_holds_up_no_one_who_has_keys(
    tmp_path: Path, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JWKS is stale and its endpoint slow: one caller reads it again while the others go on with
    the keys read before; a key id none of them has still waits for that read and gets the new key."""
    old, new = _key(), _key()
    path = tmp_path / "jwks.json"
    now = [1000.0]
    idp = IdentityProvider(
        OAuthIdp(issuer=IDP, jwks=_write_jwks(path, old), jwks_cache_seconds=60),
        issuer=ISSUER,
        db=sqlite_db,
        customer_exists=lambda _ref: True,
        clock=lambda: now[0],
    )
    assert [k.kid for k in idp.key_set(old.kid).keys] == [old.kid]
    _write_jwks(path, old, new)
    now[0] += 61
    reading, release = threading.Event(), threading.Event()
    read = IdentityProvider._read_jwks

    def slow(self: IdentityProvider, where: str) -> list[Any]:
        reading.set()
        assert release.wait(10)
        return read(self, where)

    monkeypatch.setattr(IdentityProvider, "_read_jwks", slow)
    reader = threading.Thread(target=idp.key_set, args=(old.kid,))
    reader.start()
    assert reading.wait(10)
    started = time.monotonic()
    assert [k.kid for k in idp.key_set(old.kid).keys] == [old.kid]  # the keys read before, at once
    assert time.monotonic() - started < 1
    rotated: list[set[str]] = []
    waiter = threading.Thread(target=lambda: rotated.append({k.kid for k in idp.key_set(new.kid).keys}))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # the new kid waits for the read under way
    release.set()
    reader.join(10)
    waiter.join(10)
    assert rotated == [{old.kid, new.kid}]


def test_the_development_login_is_refused_beside_an_idp_off_loopback() -> None:
    """With the bank's identity provider configured, the development login (or dev_mode, which turns it
    on) would let anyone consent as any customer: refused unless the issuer is on loopback (a trial)."""
    idp = {"FULCRUM_OAUTH_IDP__ISSUER": IDP, "FULCRUM_OAUTH_IDP__JWKS": "http://127.0.0.1:8490/jwks.json"}
    bank = {**idp, "FULCRUM_ISSUER": "https://app.bank.example"}
    for switch in ("FULCRUM_OAUTH_DEV_LOGIN", "FULCRUM_DEV_MODE"):
        with pytest.raises(SettingsError, match="oauth_dev_login: the development login"):
            load_settings(environ={**bank, switch: "true"})
        assert load_settings(environ={**idp, "FULCRUM_ISSUER": "http://localhost:8000", switch: "true"})
    assert load_settings(environ=bank).oauth_dev_login is False
    assert load_settings(environ={"FULCRUM_ISSUER": "https://app.bank.example", "FULCRUM_DEV_MODE": "true"})


def test_the_jwks_must_be_a_file_or_on_loopback() -> None:
    """A JWKS URL off the host is refused when the settings load, naming the key."""
    env = {"FULCRUM_OAUTH_IDP__ISSUER": IDP, "FULCRUM_OAUTH_IDP__JWKS": "https://login.bank.example/jwks"}
    with pytest.raises(SettingsError, match=r"FULCRUM_OAUTH_IDP__JWKS \(oauth_idp.jwks\)"):
        load_settings(environ=env)
    env["FULCRUM_OAUTH_IDP__JWKS"] = "http://127.0.0.1:8490/jwks.json"
    assert load_settings(environ=env).oauth_idp.jwks == "http://127.0.0.1:8490/jwks.json"
    with pytest.raises(SettingsError, match="set jwks or public_keys"):
        load_settings(environ={"FULCRUM_OAUTH_IDP__ISSUER": IDP})


def test_assertion_ids_are_recorded_once_and_swept_after_expiry(db: Database) -> None:
    """The first use inserts; a second is a replay; an expired id is swept by a later use."""
    from datetime import timedelta

    ids = AssertionIds(db)
    now = utcnow()
    assert ids.first_use(IDP, "a", now + timedelta(seconds=60), now=now)
    assert not ids.first_use(IDP, "a", now + timedelta(seconds=60), now=now)
    assert ids.first_use("https://other-idp.example", "a", now + timedelta(seconds=60), now=now)
    later = now + timedelta(seconds=600)
    assert ids.first_use(IDP, "b", later + timedelta(seconds=60), now=later)
    with db.read_session() as session:
        assert session.query(OAuthAssertionIdRow).count() == 1


# -- the consent page's login ---------------------------------------------------------------------


def _register_partner(app: Any) -> ECKey:
    key = _key()
    policy = PluginClientPolicy(
        "partner",
        frozenset({"holdings:read", "slot:home.notice"}),
        True,
        jwks={"keys": [key.as_dict(private=False)]},
        redirect_uris=(REDIRECT,),
    )
    sync_plugin_clients(app.runtime.db, {PARTNER: policy})
    return key


def _partner_backend(app: Any, key: ECKey) -> AsyncOAuth2Client:
    client = AsyncOAuth2Client(
        client_id=f"plugin-{PARTNER}",
        client_secret=key,
        token_endpoint_auth_method="private_key_jwt",
        base_url=ISSUER,
        transport=httpx.ASGITransport(app=app.client.app),
    )
    client.register_client_auth_method(PrivateKeyJWT(TOKEN_URL, alg="ES256", headers={"kid": key.kid}))
    return client


def _authorize_path(challenge: str) -> str:
    return "/oauth/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": f"plugin-{PARTNER}",
            "redirect_uri": REDIRECT,
            "scope": "holdings:read",
            "state": "p",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )


@pytest.fixture
def partner_app(make_app: Callable[..., Any], kit: Any, idp: OAuthIdp) -> Any:
    """The partner plugin loaded and registered, the IdP configured, the development login off."""
    return make_app(
        _partner_plugin(kit),
        oauth_idp=idp,
        deadlines=Deadlines(home_slot_offers=5_000),
        home_budget_ms=10_000,
    )


@pytest.fixture
async def webview(partner_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app's webview on ``partner_app``: keeps cookies, does not follow redirects."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=partner_app.client.app), base_url=ISSUER
    ) as c:
        yield c


async def test_without_a_login_the_consent_page_says_how_to_sign_in(partner_app: Any, webview: Any) -> None:
    """Dev login off, no login cookie: 403 ``oauth.no_login`` naming ``/oauth/login``, page and decision."""
    _register_partner(partner_app)
    page = await webview.get(_authorize_path(pkce_pair()[1]))
    assert page.status_code == 403
    problem = page.json()
    assert problem["code"] == "oauth.no_login"
    assert "/oauth/login" in problem["detail"]
    decided = await webview.post("/oauth/authorize", data={"decision": "allow", "customer": CUSTOMER})
    assert decided.status_code == 403
    assert decided.json()["code"] == "oauth.no_login"


async def test_a_browser_without_a_login_gets_a_page_not_json(partner_app: Any, webview: Any) -> None:
    """The same refusal to a browser (a partner's link opened outside the app, a login expired in the
    webview): a framing-proof page in both languages saying to sign in through the app, with the problem
    for the developer; no consent form, nothing decided."""
    _register_partner(partner_app)
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    page = await webview.get(_authorize_path(pkce_pair()[1]), headers=browser)
    decided = await webview.post(
        "/oauth/authorize", data={"decision": "allow", "customer": CUSTOMER}, headers=browser
    )
    for response in (page, decided):
        assert (response.status_code, response.headers["content-type"].split(";")[0]) == (403, "text/html")
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert "请先登录" in response.text
        assert "Please sign in first" in response.text
        assert "oauth.no_login" in response.text
        assert "/oauth/login" in response.text
        assert "<form" not in response.text
        assert "location" not in response.headers


async def test_a_forged_or_foreign_login_cookie_signs_no_one_in(
    partner_app: Any, webview: Any, tmp_path: Path
) -> None:
    """A cookie signed by other keys, or an access token put in its place, is no login."""
    from fulcrum_core.auth.keys import KeyStore

    _register_partner(partner_app)
    name = login_session.cookie_name(ISSUER)
    other = KeyStore.open(tmp_path / "other-keys")
    for value in (
        login_session.sign(other, issuer=ISSUER, customer_ref=CUSTOMER, seconds=60),
        partner_app.token(),
        "not-a-jwt",
    ):
        webview.cookies.set(name, value)
        assert (await webview.get(_authorize_path(pkce_pair()[1]))).status_code == 403


def test_a_login_cookie_lasts_its_seconds_for_its_issuer_only(tmp_path: Path) -> None:
    """The cookie names its customer until it expires, and only for the issuer that signed it."""
    from fulcrum_core.auth.keys import KeyStore

    keys = KeyStore.open(tmp_path / "keys")
    value = login_session.sign(keys, issuer=ISSUER, customer_ref=CUSTOMER, seconds=600, now=1000)
    assert login_session.read(keys, value, issuer=ISSUER, signed_out=_never, clock=lambda: 1599) == CUSTOMER
    assert login_session.read(keys, value, issuer=ISSUER, signed_out=_never, clock=lambda: 1600) is None
    other_issuer = "http://127.0.0.1:9"
    assert login_session.read(keys, value, issuer=other_issuer, signed_out=_never, clock=lambda: 1000) is None


async def test_login_refuses_a_bad_assertion_a_replay_and_a_foreign_next(
    partner_app: Any, webview: Any, idp_key: ECKey
) -> None:
    """The token grant's checks (400 ``oauth.bad_assertion``, no cookie); ``next`` stays on this host."""
    bad = await webview.post("/oauth/login", data={"assertion": sign(_key())})
    assert (bad.status_code, bad.json()["code"], bad.json()["field"]) == (
        400,
        "oauth.bad_assertion",
        "assertion",
    )
    assert login_session.cookie_name(ISSUER) not in webview.cookies
    missing = await webview.post("/oauth/login", data={"assertion": ""})
    assert (missing.status_code, missing.json()["field"]) == (400, "assertion")
    for target in (
        "https://evil.example/oauth/authorize?x",
        "/v1/home",
        "//evil.example/oauth/authorize?",
        "/oauth/authorize?x\r\nSet-Cookie: a=b",
        "/oauth/authorize?\\evil.example",
    ):
        foreign = await webview.post("/oauth/login", data={"assertion": sign(idp_key), "next": target})
        assert (foreign.status_code, foreign.json()["field"]) == (400, "next")
    assertion = sign(idp_key)
    assert (await webview.post("/oauth/login", data={"assertion": assertion})).status_code == 204
    again = await webview.post("/oauth/login", data={"assertion": assertion})
    assert (again.status_code, again.json()["code"]) == (400, "oauth.bad_assertion")
    assert "already used" in again.json()["detail"]


async def test_login_refuses_a_sign_in_another_sites_page_sent(
    partner_app: Any, webview: Any, idp_key: ECKey
) -> None:
    """Login CSRF: a page on another site posting its own assertion would sign the browser in as that
    someone. A browser names the page's origin, so such a post is a 403 ``oauth.cross_site`` and sets
    no cookie; this host's own origin, and a client sending neither header (the app), sign in."""
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": ISSUER, "Sec-Fetch-Site": "same-site"},
    ):
        refused = await webview.post("/oauth/login", data={"assertion": sign(idp_key)}, headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "oauth.cross_site"), headers
        assert login_session.cookie_name(ISSUER) not in webview.cookies
    own = {"Origin": ISSUER, "Sec-Fetch-Site": "same-origin"}
    signed_in = await webview.post("/oauth/login", data={"assertion": sign(idp_key)}, headers=own)
    assert signed_in.status_code == 204
    assert (await webview.post("/oauth/login", data={"assertion": sign(idp_key)})).status_code == 204


def _cleared(set_cookie: str) -> bool:
    """Whether ``set_cookie`` deletes the login cookie with the attributes the login set it with."""
    name = login_session.cookie_name(ISSUER)
    attributes = {part.strip().split("=")[0].lower(): part.strip() for part in set_cookie.split(";")}
    return (
        set_cookie.startswith(f"{name}=")
        and attributes.get("max-age") == "Max-Age=0"
        and attributes.get("path") == "Path=/"
        and "httponly" in attributes
        and attributes.get("samesite", "").lower() == "samesite=lax"
    )


def test_over_https_the_login_cookie_is_host_only_and_its_sign_out_clears_that_one(
    make_app: Callable[..., Any], tmp_path: Path, idp_key: ECKey
) -> None:
    """With an https issuer the login sets ``__Host-fulcrum-login`` with ``Secure``, and the sign-out's
    deletion names that cookie with the same attributes (a browser ignores a deletion of a ``__Host-``
    cookie that lacks ``Secure`` or ``Path=/``, and the cookie would outlive the sign-out)."""
    issuer = "https://bank.example"
    idp = OAuthIdp(issuer=IDP, jwks=_write_jwks(tmp_path / "https-jwks.json", idp_key))
    app = make_app(oauth_idp=idp, issuer=issuer)
    name = login_session.cookie_name(issuer)
    assert name == "__Host-fulcrum-login"
    assertion = sign(idp_key, aud=f"{issuer}/oauth/token")
    signed_in = app.client.post("/oauth/login", data={"assertion": assertion})
    assert signed_in.status_code == 204, signed_in.text
    given = signed_in.headers["set-cookie"]
    attributes = {part.strip().lower() for part in given.split(";")}
    assert given.startswith(f"{name}=")
    assert {"secure", "path=/", "httponly"} <= attributes
    assert not any(a.startswith("domain=") for a in attributes)  # a __Host- cookie names no domain
    value = given.split(";")[0].split("=", 1)[1]
    out = app.client.post("/oauth/logout", headers={"Cookie": f"{name}={value}"})
    assert out.status_code == 204
    cleared = out.headers["set-cookie"]
    cleared_attributes = {part.strip().lower() for part in cleared.split(";")}
    assert cleared.startswith(f"{name}=")
    assert {"secure", "path=/", "httponly", "max-age=0"} <= cleared_attributes


async def test_signing_out_ends_the_login_on_every_worker(
    make_app: Callable[..., Any], kit: Any, idp: OAuthIdp, idp_key: ECKey, database_url: str
) -> None:
    """Sign in, consent page OK; ``POST /oauth/logout`` clears the cookie, and a copy of it taken before
    is refused by this worker and by a second one on the same database (``oauth.no_login``); signing
    out again, without a cookie or with a garbage one, is the same 204; a new sign-in works."""
    first = make_app(_partner_plugin(kit), oauth_idp=idp, database_url=database_url)
    second = make_app(_partner_plugin(kit), oauth_idp=idp, database_url=database_url)  # another worker
    _register_partner(first)
    name = login_session.cookie_name(ISSUER)
    authorize = _authorize_path(pkce_pair()[1])
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=first.client.app), base_url=ISSUER) as one,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=second.client.app), base_url=ISSUER) as two,
    ):
        assert (await one.post("/oauth/login", data={"assertion": sign(idp_key)})).status_code == 204
        taken = one.cookies[name]  # the copy someone keeps
        page = await one.get(authorize)
        assert page.status_code == 200, page.text
        assert "Signed in as" in page.text
        two.cookies.set(name, taken)
        assert (await two.get(authorize)).status_code == 200  # every worker honours it until sign-out
        fields = {**form_fields(page.text), "decision": "allow"}

        out = await one.post("/oauth/logout", headers={"Origin": ISSUER, "Sec-Fetch-Site": "same-origin"})
        assert out.status_code == 204, out.text
        assert out.headers["cache-control"] == "no-store"
        assert _cleared(out.headers["set-cookie"]), out.headers["set-cookie"]
        assert name not in one.cookies

        for browser in (one, two):
            browser.cookies.set(name, taken)
            refused = await browser.get(authorize)
            assert (refused.status_code, refused.json()["code"]) == (403, "oauth.no_login")
            decided = await browser.post("/oauth/authorize", data=fields)
            assert (decided.status_code, decided.json()["code"]) == (403, "oauth.no_login")

        for cookie in (taken, None, "not-a-jwt"):  # again, none, garbage: the same answer
            one.cookies.clear()
            if cookie is not None:
                one.cookies.set(name, cookie)
            again = await one.post("/oauth/logout")
            assert again.status_code == 204, again.text
            assert _cleared(again.headers["set-cookie"])

        assert (await one.post("/oauth/login", data={"assertion": sign(idp_key)})).status_code == 204
        assert (await one.get(authorize)).status_code == 200  # a new login is a new cookie


async def test_signing_in_again_ends_the_cookie_it_replaces(
    partner_app: Any, webview: Any, idp_key: ECKey
) -> None:
    """The app posts ``/oauth/login`` each time it opens the consent page: the cookie a new login
    replaces ends then, so a copy of an earlier one does not outlive the sign-out that ends the last."""
    _register_partner(partner_app)
    name = login_session.cookie_name(ISSUER)
    authorize = _authorize_path(pkce_pair()[1])
    assert (await webview.post("/oauth/login", data={"assertion": sign(idp_key)})).status_code == 204
    earlier = webview.cookies[name]
    assert (await webview.post("/oauth/login", data={"assertion": sign(idp_key)})).status_code == 204
    latest = webview.cookies[name]
    assert latest != earlier
    assert (await webview.get(authorize)).status_code == 200  # the latest login works
    webview.cookies.set(name, earlier)
    refused = await webview.get(authorize)
    assert (refused.status_code, refused.json()["code"]) == (403, "oauth.no_login")
    webview.cookies.set(name, latest)
    assert (await webview.post("/oauth/logout")).status_code == 204
    for cookie in (earlier, latest):
        webview.cookies.set(name, cookie)
        assert (await webview.get(authorize)).status_code == 403


async def test_a_sign_out_that_cannot_be_recorded_still_clears_the_cookie(
    partner_app: Any, webview: Any, idp_key: ECKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the database away the sign-out is a 503 saying a copy of the cookie still works, and the
    answer still clears this browser's cookie (with the login's attributes)."""
    _register_partner(partner_app)
    assert (await webview.post("/oauth/login", data={"assertion": sign(idp_key)})).status_code == 204

    def away(self: Any, claims: Any) -> None:
        raise ConnectionError("database away")

    monkeypatch.setattr(login_session.SignOuts, "sign_out", away)
    out = await webview.post("/oauth/logout")
    assert out.status_code == 503, out.text
    assert "copy of the login cookie" in out.json()["detail"]
    assert _cleared(out.headers["set-cookie"]), out.headers["set-cookie"]
    assert out.headers["cache-control"] == "no-store"
    assert login_session.cookie_name(ISSUER) not in webview.cookies


async def test_logout_refuses_a_sign_out_another_sites_page_sent(
    partner_app: Any, webview: Any, idp_key: ECKey
) -> None:
    """A sign-out posted by another site's page is a 403 ``oauth.cross_site`` that leaves the login
    as it was (neither cleared nor revoked)."""
    _register_partner(partner_app)
    authorize = _authorize_path(pkce_pair()[1])
    assert (await webview.post("/oauth/login", data={"assertion": sign(idp_key)})).status_code == 204
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = await webview.post("/oauth/logout", headers=headers)
        assert (refused.status_code, refused.json()["code"]) == (403, "oauth.cross_site"), headers
        assert "sign-out" in refused.json()["detail"]
        assert "set-cookie" not in refused.headers
        assert (await webview.get(authorize)).status_code == 200


def test_a_signed_out_login_cookie_is_read_as_no_one(tmp_path: Path, db: Database) -> None:
    """``SignOuts`` keeps a cookie's ``jti`` in the shared table: ``read`` refuses that cookie alone,
    for that issuer alone; signing it out twice is no error."""
    from fulcrum_core.auth.keys import KeyStore

    keys = KeyStore.open(tmp_path / "keys")
    value = login_session.sign(keys, issuer=ISSUER, customer_ref=CUSTOMER, seconds=600)
    other = login_session.sign(keys, issuer=ISSUER, customer_ref=CUSTOMER, seconds=600)
    sign_outs = login_session.SignOuts(db, ISSUER)
    assert login_session.read(keys, value, issuer=ISSUER, signed_out=sign_outs.signed_out) == CUSTOMER
    claims = login_session.verify(keys, value, issuer=ISSUER)
    assert claims is not None
    sign_outs.sign_out(claims)
    sign_outs.sign_out(claims)
    assert login_session.read(keys, value, issuer=ISSUER, signed_out=sign_outs.signed_out) is None
    assert login_session.read(keys, other, issuer=ISSUER, signed_out=sign_outs.signed_out) == CUSTOMER
    elsewhere = login_session.SignOuts(db, "http://127.0.0.1:9")
    assert not elsewhere.signed_out(claims)


async def test_a_signed_in_customer_consents_and_the_partner_gets_a_token(
    partner_app: Any, webview: Any, idp_key: ECKey
) -> None:
    """Login with an assertion → consent page for that customer → code → the partner backend's token."""
    partner_key = _register_partner(partner_app)
    verifier, challenge = pkce_pair()
    authorize = _authorize_path(challenge)
    login = await webview.post("/oauth/login", data={"assertion": sign(idp_key), "next": authorize})
    assert login.status_code == 303
    assert login.headers["location"] == authorize
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie

    page = await webview.get(authorize)
    assert page.status_code == 200, page.text
    assert "Signed in as" in page.text
    assert CUSTOMER in page.text
    assert "开发登录" not in page.text
    assert 'name="customer"' not in page.text
    # A customer field smuggled into the form is ignored: the signed-in customer decides.
    fields = {**form_fields(page.text), "decision": "allow", "customer": "c-0755-001"}
    redirect = await webview.post("/oauth/authorize", data=fields)
    assert redirect.status_code == 302, redirect.text
    location = redirect.headers["location"]
    assert location.startswith(REDIRECT)

    backend = _partner_backend(partner_app, partner_key)
    token = await backend.fetch_token(
        TOKEN_URL,
        grant_type="authorization_code",
        code=parse_qs(urlsplit(location).query)["code"][0],
        redirect_uri=REDIRECT,
        code_verifier=verifier,
    )
    await backend.aclose()
    principal = partner_app.runtime.tokens.verify(token["access_token"])
    assert principal.sub == partner_app.runtime.contexts.pairwise_id(PARTNER, CUSTOMER) != CUSTOMER
    assert principal.scopes == frozenset({"holdings:read"})
    consents = partner_app.get("/v1/consents").json()["consents"]
    assert [(c["plugin_id"], c["scopes"]) for c in consents] == [(PARTNER, ["holdings:read"])]
    home = partner_app.get("/v1/home").json()["slots"]["home.notice/v1"]
    assert [i["key"] for i in home if i["plugin"] == PARTNER] == ["allowed"]


async def test_a_signed_in_customer_the_bank_no_longer_knows_is_told_so_not_to_choose_a_demo_customer(
    partner_app: Any, webview: Any, idp_key: ECKey
) -> None:
    """The customer signed in, then the bank's data stopped knowing them (an account closed meanwhile):
    the decision was refused with "choose a known demo customer", words of the demo's development login,
    which a bank's consent page does not have."""
    _register_partner(partner_app)
    authorize = _authorize_path(pkce_pair()[1])
    assert (await webview.post("/oauth/login", data={"assertion": sign(idp_key)})).status_code == 204
    page = await webview.get(authorize)
    assert page.status_code == 200, page.text
    provider = partner_app.runtime.provider
    provider.profile = lambda customer_ref: None
    refused = await webview.post("/oauth/authorize", data={**form_fields(page.text), "decision": "allow"})
    assert refused.status_code == 400, refused.text
    problem = refused.json()
    assert problem["field"] == "customer"
    assert problem["detail"] == (
        f"the bank does not know the signed-in customer '{CUSTOMER}' (any more): nothing was authorized"
    )
    del provider.profile  # the bank knows the customer again: nothing was recorded meanwhile
    assert partner_app.get("/v1/consents").json()["consents"] == []


async def test_a_decision_is_taken_only_for_the_customer_the_page_named(
    partner_app: Any, webview: Any, idp_key: ECKey
) -> None:
    """The page said "Signed in as" one customer; the webview then signed in as another (a shared phone,
    the app switching accounts) and the open page's form was sent: the consent and the code were for the
    customer signed in then, who never saw the page. Now the form answers only for the customer it named;
    the page opened again names the new one and decides for them."""
    _register_partner(partner_app)
    other = "synthetic-affluent"
    authorize = _authorize_path(pkce_pair()[1])
    assert (await webview.post("/oauth/login", data={"assertion": sign(idp_key)})).status_code == 204
    page = await webview.get(authorize)
    assert page.status_code == 200, page.text
    assert CUSTOMER in page.text
    switched = await webview.post("/oauth/login", data={"assertion": sign(idp_key, sub=other)})
    assert switched.status_code == 204
    stale = await webview.post("/oauth/authorize", data={**form_fields(page.text), "decision": "allow"})
    assert (stale.status_code, stale.json()["code"]) == (403, "oauth.csrf")
    assert ConsentStore(partner_app.runtime.db).list(other) == []
    again = await webview.get(authorize)
    assert other in again.text
    decided = await webview.post("/oauth/authorize", data={**form_fields(again.text), "decision": "allow"})
    assert decided.status_code == 302, decided.text
    assert [c.plugin_id for c in ConsentStore(partner_app.runtime.db).list(other)] == [PARTNER]
    assert ConsentStore(partner_app.runtime.db).list(CUSTOMER) == []


async def test_the_development_login_is_unchanged_beside_an_idp(
    make_app: Callable[..., Any], idp: OAuthIdp, oauth_client: Callable[..., Any]
) -> None:
    """With both on and no login cookie, the page offers the demo customers as before."""
    app = make_app(oauth_idp=idp, oauth_dev_login=True)
    client = oauth_client(app.client.app, scope="home:read")
    url, _state = client.create_authorization_url(f"{ISSUER}/oauth/authorize", code_verifier="v" * 64)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app.client.app), base_url=ISSUER
    ) as browser:
        page = await browser.get(url)
        assert page.status_code == 200
        assert "开发登录" in page.text
        assert 'name="customer"' in page.text
        fields = {**form_fields(page.text), "decision": "allow", "customer": CUSTOMER}
        redirect = await browser.post("/oauth/authorize", data=fields)
    assert redirect.status_code == 302
    token = await client.fetch_token(
        TOKEN_URL, authorization_response=redirect.headers["location"], code_verifier="v" * 64
    )
    assert app.runtime.tokens.verify(token["access_token"]).sub == CUSTOMER


def test_unreadable_idp_keys_are_the_operators_problem_not_the_clients(
    make_app: Callable[..., Any], tmp_path: Path, idp_key: ECKey
) -> None:
    """A JWKS file that is not there, or a PEM that is no key: 503 at both paths, never 400 nor 500."""
    for idp in (
        OAuthIdp(issuer=IDP, jwks=str(tmp_path / "missing.json")),
        OAuthIdp(issuer=IDP, public_keys=("not a key",)),
    ):
        app = make_app(oauth_idp=idp)
        form = {"grant_type": JWT_BEARER, "client_id": "fulcrum-app", "assertion": sign(idp_key)}
        token = app.client.post("/oauth/token", data=form)
        assert (token.status_code, token.json()["error"]) == (503, "temporarily_unavailable")
        login = app.client.post("/oauth/login", data={"assertion": sign(idp_key)})
        assert login.status_code == 503, login.text
        assert app.client.get("/.well-known/oauth-authorization-server").status_code == 200


def test_a_jwks_url_on_loopback_is_fetched(tmp_path: Path, sqlite_db: Database) -> None:
    """A sidecar of the IdP serving its JWK Set on 127.0.0.1: the keys are read from there."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    key = _key()
    body = json.dumps({"keys": [key.as_dict(private=False)]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        idp = IdentityProvider(
            OAuthIdp(issuer=IDP, jwks=url), issuer=ISSUER, db=sqlite_db, customer_exists=lambda _ref: True
        )
        assert [k.kid for k in idp.key_set().keys] == [key.kid]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


async def test_login_refuses_a_form_in_another_charset(
    partner_app: Any, webview: Any, idp_key: ECKey
) -> None:
    """A sign-in form declared in Latin-1 is a 415 naming the charset and ``Content-Type`` (it was read
    as UTF-8 regardless), and sets no cookie."""
    response = await webview.post(
        "/oauth/login", content=f"assertion={sign(idp_key)}&note=caf%E9",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=latin-1"},
    )
    assert (response.status_code, response.json()["field"]) == (415, "Content-Type"), response.text
    assert "charset 'latin-1'" in response.json()["detail"]
    assert login_session.cookie_name(ISSUER) not in webview.cookies
