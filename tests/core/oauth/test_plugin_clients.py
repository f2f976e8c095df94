"""Plugin clients: created, narrowed and disabled from the registry's policy; client credentials."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from authlib.integrations.base_client import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from fulcrum_core.data.db import Database
from fulcrum_core.data.types import utcnow
from fulcrum_core.errors import BadRequest
from fulcrum_core.oauth.metadata import server_metadata
from fulcrum_core.oauth.plugin_clients import PluginClientPolicy, plugin_client_id, sync_plugin_clients
from fulcrum_core.oauth.server import oauth_server
from fulcrum_core.oauth.used_ids import AssertionIds, client_slot
from fulcrum_sdk.oauth_client import Jwks, oauth_problems
from fulcrum_sdk.oauth_client import OAuthClient as ManifestOAuth
from joserfc.jwk import ECKey, OKPKey, RSAKey

from .conftest import ISSUER

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

TOKEN_URL = f"{ISSUER}/oauth/token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
INTERNAL = PluginClientPolicy("department", frozenset({"slot:home.banner", "profile:basic"}), True)


def _db(app: Any) -> Database:
    db: Database = app.runtime.db
    return db


def _secret_client(app: Any, client_id: str, secret: str) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id=client_id,
        client_secret=secret,
        base_url=ISSUER,
        transport=httpx.ASGITransport(app=app.client.app),
    )


@pytest.mark.anyio
async def test_internal_plugin_gets_exactly_its_scopes(oauth_app: Any) -> None:
    """A department plugin's backend gets a token with its granted scopes, and not one more."""
    changes = sync_plugin_clients(_db(oauth_app), {"wealth": INTERNAL})
    assert [(c.action, c.client_id) for c in changes] == [("created", "plugin-wealth")]
    secret = changes[0].secret
    assert secret
    async with _secret_client(oauth_app, "plugin-wealth", secret) as client:
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert set(token["scope"].split()) == INTERNAL.scopes
        assert "refresh_token" not in token
        principal = oauth_app.runtime.tokens.verify(token["access_token"])
        assert (principal.kind, principal.sub) == ("client", "plugin-wealth")
        with pytest.raises(OAuthError) as beyond:
            await client.fetch_token(TOKEN_URL, grant_type="client_credentials", scope="holdings:read")
        assert beyond.value.error == "invalid_scope"


@pytest.mark.anyio
async def test_wrong_secret_is_invalid_client(oauth_app: Any) -> None:
    """A wrong client secret is ``invalid_client``."""
    sync_plugin_clients(_db(oauth_app), {"wealth": INTERNAL})
    async with _secret_client(oauth_app, "plugin-wealth", "not-the-secret") as client:
        with pytest.raises(OAuthError) as refused:
            await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


@pytest.mark.anyio
async def test_suspension_disables_and_narrowing_shrinks(oauth_app: Any) -> None:
    """Narrowing drops a scope from new tokens; suspending makes the client unable to authenticate."""
    db = _db(oauth_app)
    secret = sync_plugin_clients(db, {"wealth": INTERNAL})[0].secret
    assert secret
    narrowed = INTERNAL._replace(scopes=frozenset({"slot:home.banner"}))
    assert sync_plugin_clients(db, {"wealth": narrowed})[0].action == "updated"
    assert sync_plugin_clients(db, {"wealth": narrowed})[0].action == "unchanged"
    async with _secret_client(oauth_app, "plugin-wealth", secret) as client:
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert token["scope"] == "slot:home.banner"
        assert sync_plugin_clients(db, {"wealth": narrowed._replace(active=False)})[0].action == "disabled"
        with pytest.raises(OAuthError) as refused:
            await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert refused.value.error == "invalid_client"


@pytest.mark.anyio
async def test_a_release_without_redirect_uris_ends_the_clients_refresh_tokens(oauth_app: Any) -> None:
    """A release that drops its redirect URIs runs no customer authorization any more: its client lost
    the refresh grant but its refresh tokens were kept, and came back to life with a later release that
    lists redirect URIs again, weeks of tokens the customers had no page for in between."""
    db = _db(oauth_app)
    flows = INTERNAL._replace(redirect_uris=("https://wealth.example/callback",))
    secret = sync_plugin_clients(db, {"wealth": flows})[0].secret
    assert secret
    refresh = oauth_server(oauth_app.runtime).refresh_tokens
    token = refresh.issue(
        family_id=None, client_id="plugin-wealth", subject="c-1", subject_kind="customer",
        scope="profile:basic",
    )
    assert sync_plugin_clients(db, {"wealth": INTERNAL})[0].action == "updated"
    assert sync_plugin_clients(db, {"wealth": flows})[0].action == "updated"
    async with _secret_client(oauth_app, "plugin-wealth", secret) as client:
        with pytest.raises(OAuthError) as refused:
            await client.refresh_token(TOKEN_URL, refresh_token=token)
    assert refused.value.error == "invalid_grant"


def test_a_client_is_named_as_the_approved_manifest_names_the_plugin(oauth_app: Any) -> None:
    """The consent page and a consent's purpose showed 插件 <id> / Plugin <id>: the client now takes the
    manifest's name, and a later release's name; a policy without one leaves the name as it is."""
    db, clients = _db(oauth_app), oauth_server(oauth_app.runtime).clients
    named = INTERNAL._replace(name=("财富体检", "Wealth check-up"))
    assert sync_plugin_clients(db, {"wealth": named})[0].action == "created"
    client = clients.get("plugin-wealth")
    assert client is not None
    assert (client.name_zh, client.name_en) == ("财富体检", "Wealth check-up")
    assert sync_plugin_clients(db, {"wealth": named})[0].action == "unchanged"
    renamed = named._replace(name=("财富体检报告", None))
    assert sync_plugin_clients(db, {"wealth": renamed})[0].action == "updated"
    client = clients.get("plugin-wealth")
    assert client is not None
    assert (client.name_zh, client.name_en) == ("财富体检报告", None)
    assert sync_plugin_clients(db, {"wealth": INTERNAL})[0].action == "unchanged"
    assert sync_plugin_clients(db, {"pension": INTERNAL})[0].action == "created"
    unnamed = clients.get("plugin-pension")
    assert unnamed is not None
    assert (unnamed.name_zh, unnamed.name_en) == ("插件 pension", "Plugin pension")


def test_complete_policy_disables_absent_plugins(oauth_app: Any) -> None:
    """With ``complete=True`` a plugin missing from the policy has its client disabled."""
    db = _db(oauth_app)
    sync_plugin_clients(db, {"wealth": INTERNAL, "pension": INTERNAL})
    changes = sync_plugin_clients(db, {"wealth": INTERNAL}, complete=True)
    assert ("pension", "disabled") in [(c.plugin_id, c.action) for c in changes]
    assert oauth_server(oauth_app.runtime).query_client(plugin_client_id("pension")) is None


@pytest.mark.parametrize("scope", ["home:read", "registry:review", "no-such-scope"])
def test_ungrantable_scopes_are_refused(oauth_app: Any, scope: str) -> None:
    """App, staff and unknown scopes cannot be granted to a plugin client; nothing is written."""
    with pytest.raises(BadRequest) as refused:
        sync_plugin_clients(_db(oauth_app), {"bad": INTERNAL._replace(scopes=frozenset({scope}))})
    assert refused.value.field == "scopes"
    assert oauth_server(oauth_app.runtime).clients.get(plugin_client_id("bad")) is None


def _partner_client(app: Any, signing_key: ECKey, claims: dict[str, Any] | None = None) -> AsyncOAuth2Client:
    """The partner backend ``plugin-fund`` signing its client assertions with ``signing_key`` (and
    ``claims`` over authlib's own, e.g. a chosen ``jti``)."""
    client = AsyncOAuth2Client(
        client_id="plugin-fund",
        client_secret=signing_key,
        token_endpoint_auth_method="private_key_jwt",
        base_url=ISSUER,
        transport=httpx.ASGITransport(app=app.client.app),
    )
    # The kid names the key among those registered (a set holds two while keys rotate).
    auth = PrivateKeyJWT(TOKEN_URL, alg="ES256", headers={"kid": signing_key.kid}, claims=claims)
    client.register_client_auth_method(auth)
    return client


def _partner(*keys: ECKey) -> PluginClientPolicy:
    return PluginClientPolicy(
        "partner",
        frozenset({"holdings:read", "slot:home.banner"}),
        True,
        jwks={"keys": [key.as_dict(private=False) for key in keys]},
    )


@pytest.mark.anyio
async def test_partner_authenticates_with_private_key_jwt(oauth_app: Any) -> None:
    """A partner signs a client assertion with its key; another key, or no key registered, is refused."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    changes = sync_plugin_clients(_db(oauth_app), {"fund": _partner(key)})
    assert changes[0].secret is None

    async with _partner_client(oauth_app, key) as client:
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials", scope="slot:home.banner")
        assert token["scope"] == "slot:home.banner"
    async with _partner_client(oauth_app, ECKey.generate_key("P-256", auto_kid=True)) as attacker:
        with pytest.raises(OAuthError) as refused:
            await attacker.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert refused.value.error == "invalid_client"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("make_key", "alg"),
    [
        (lambda: ECKey.generate_key("P-384", auto_kid=True), "ES384"),
        (lambda: OKPKey.generate_key("Ed25519", auto_kid=True), "Ed25519"),
        pytest.param(
            lambda: OKPKey.generate_key("Ed25519", auto_kid=True), "EdDSA",
            # joserfc warns that RFC 9864 names the algorithm Ed25519 now; the manifest still says EdDSA.
            marks=pytest.mark.filterwarnings("ignore:EdDSA is deprecated:joserfc.errors.SecurityWarning"),
        ),
        (lambda: RSAKey.generate_key(2048, auto_kid=True), "PS256"),
    ],
    ids=["ES384", "Ed25519", "EdDSA", "PS256"],
)
async def test_a_partner_authenticates_with_any_key_its_manifest_may_list(
    oauth_app: Any, make_key: Callable[[], Any], alg: str
) -> None:
    """The manifest check accepts P-384, Ed25519 and RSA-PSS keys, but the token endpoint verified client
    assertions with ES256, RS256 and HS256 alone: a partner approved with such a key could never
    authenticate ("Algorithm of 'ES384' is not recommended", invalid_client)."""
    key = make_key()
    public = key.as_dict(private=False)
    assert oauth_problems(ManifestOAuth(jwks=Jwks(keys=(public,))), kind="partner") == []
    sync_plugin_clients(_db(oauth_app), {"fund": _partner(key)})
    client = AsyncOAuth2Client(
        client_id="plugin-fund", client_secret=key, token_endpoint_auth_method="private_key_jwt",
        base_url=ISSUER, transport=httpx.ASGITransport(app=oauth_app.client.app),
    )
    client.register_client_auth_method(PrivateKeyJWT(TOKEN_URL, alg=alg, headers={"kid": key.kid}))
    async with client:
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials", scope="slot:home.banner")
    assert token["scope"] == "slot:home.banner"
    assert alg in server_metadata(ISSUER)["token_endpoint_auth_signing_alg_values_supported"]


@pytest.mark.anyio
async def test_a_replayed_client_assertion_is_refused_by_every_worker(
    make_app: Callable[..., Any], database_url: str
) -> None:
    """A client assertion captured on the wire is spent: its ``jti`` is kept in the database, so the
    worker that took it and a second worker on the same database (another runtime) both refuse it."""
    first = make_app(oauth_dev_login=True, database_url=database_url)
    second = make_app(oauth_dev_login=True, database_url=database_url)  # another runtime: another worker
    key = ECKey.generate_key("P-256", auto_kid=True)
    sync_plugin_clients(_db(first), {"fund": _partner(key)})
    sent: list[bytes] = []

    async def capture(request: httpx.Request) -> None:
        sent.append(await request.aread())

    async with _partner_client(first, key) as client:
        client.event_hooks["request"].append(capture)
        assert (await client.fetch_token(TOKEN_URL, grant_type="client_credentials"))["access_token"]
    body = parse_qs(sent[0].decode())
    assert body["client_assertion"], "authlib's PrivateKeyJWT sent no client assertion"
    for worker in (first, second):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=worker.client.app), base_url=ISSUER
        ) as replayer:
            replay = await replayer.post("/oauth/token", content=sent[0], headers=FORM)
        assert replay.status_code == 400, replay.text  # invalid_client without HTTP authentication
        assert replay.json() == {
            "error": "invalid_client",
            "error_description": "the client assertion was already used (its jti was seen before)",
        }
    async with _partner_client(second, key) as fresh:  # a new assertion (another jti) still works
        assert (await fresh.fetch_token(TOKEN_URL, grant_type="client_credentials"))["access_token"]


@pytest.mark.anyio
async def test_a_client_assertions_jti_is_its_clients_alone(oauth_app: Any) -> None:
    """Ids are kept per client: a jti another client (or the bank's identity provider) spent does not
    refuse this client's assertion, and one with no usable jti is refused by name."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    sync_plugin_clients(_db(oauth_app), {"fund": _partner(key), "other": _partner(key)})
    until = utcnow() + timedelta(minutes=5)
    used = AssertionIds(_db(oauth_app))
    assert used.first_use(client_slot("plugin-other"), "shared-jti", until)
    assert used.first_use("https://login.bank.example", "shared-jti", until)
    async with _partner_client(oauth_app, key, claims={"jti": "shared-jti"}) as client:
        assert (await client.fetch_token(TOKEN_URL, grant_type="client_credentials"))["access_token"]
        with pytest.raises(OAuthError) as again:
            await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert (again.value.error, again.value.description) == (
        "invalid_client",
        "the client assertion was already used (its jti was seen before)",
    )
    for jti, says in (
        ("", "the client assertion needs a jti (1 to 256 characters)"),
        ("j" * 257, "the client assertion needs a jti (1 to 256 characters)"),
        (7, "Claim 'jti' must be a string"),  # joserfc's own check, before ours
    ):
        async with _partner_client(oauth_app, key, claims={"jti": jti}) as client:
            with pytest.raises(OAuthError) as refused:
                await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert (refused.value.error, refused.value.description) == ("invalid_client", says), jti


@pytest.mark.anyio
async def test_a_key_dropped_from_the_set_stops_working(oauth_app: Any) -> None:
    """Key rotation: a release listing the new key beside the old lets both sign; the next one, with
    the new key alone, refuses the old (the set is replaced, never merged)."""
    old, new = ECKey.generate_key("P-256", auto_kid=True), ECKey.generate_key("P-256", auto_kid=True)
    sync_plugin_clients(_db(oauth_app), {"fund": _partner(old)})
    sync_plugin_clients(_db(oauth_app), {"fund": _partner(old, new)})
    for key in (old, new):
        async with _partner_client(oauth_app, key) as client:
            assert (await client.fetch_token(TOKEN_URL, grant_type="client_credentials"))["access_token"]
    changes = sync_plugin_clients(_db(oauth_app), {"fund": _partner(new)})
    assert changes[0].action == "updated"
    async with _partner_client(oauth_app, old) as retired:
        with pytest.raises(OAuthError) as refused:
            await retired.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert refused.value.error == "invalid_client"
    assert sync_plugin_clients(_db(oauth_app), {"fund": _partner(new)})[0].action == "unchanged"


def test_partner_without_keys_is_created_disabled(oauth_app: Any) -> None:
    """A partner approved before registering its keys exists but cannot authenticate yet."""
    policy = PluginClientPolicy("partner", frozenset({"slot:home.banner"}), True)
    sync_plugin_clients(_db(oauth_app), {"fund": policy})
    client = oauth_server(oauth_app.runtime).clients.get("plugin-fund")
    assert client is not None
    assert not client.active
    assert client.auth_method == "private_key_jwt"


@pytest.mark.anyio
async def test_public_client_cannot_use_client_credentials(
    oauth_app: Any, oauth_client: Callable[..., AsyncOAuth2Client]
) -> None:
    """The mobile app (a public client) cannot get tokens with client credentials."""
    client = oauth_client(oauth_app.client.app)
    with pytest.raises(OAuthError) as refused:
        await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert refused.value.error in {"invalid_client", "unauthorized_client"}


def test_one_refused_policy_does_not_hold_back_the_others(oauth_app: Any) -> None:
    """isolate=True (the watcher): a plugin whose redirect URI is malformed is refused and its client
    disabled, while a plugin that left the policy (suspended) is still disabled and a good one synced."""
    db = _db(oauth_app)
    sync_plugin_clients(db, {"good": INTERNAL, "bad": INTERNAL, "gone": INTERNAL})
    broken = INTERNAL._replace(redirect_uris=("https://x.example/cb x",))
    changes = sync_plugin_clients(db, {"good": INTERNAL, "bad": broken}, complete=True, isolate=True)
    actions = {c.plugin_id: (c.action, c.problem is not None) for c in changes}
    assert actions == {"gone": ("disabled", False), "bad": ("refused", True), "good": ("unchanged", False)}
    clients = oauth_server(oauth_app.runtime).clients
    assert [clients.get(plugin_client_id(p)).active for p in ("good", "bad", "gone")] == [True, False, False]
    with pytest.raises(BadRequest) as refused:  # without isolate: refused before anything is written
        sync_plugin_clients(db, {"good": INTERNAL._replace(scopes=frozenset()), "bad": broken})
    assert refused.value.field == "redirect_uris"


@pytest.mark.anyio
async def test_a_registered_key_that_does_not_import_is_invalid_client_not_a_500(oauth_app: Any) -> None:
    """A key that reached the client some other way but is not a key (a point off the curve): anyone
    naming the client gets invalid_client, never a server error."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    public = key.as_dict(private=False)
    broken = {**public, "x": public["y"], "y": public["x"]}
    policy = PluginClientPolicy("partner", frozenset({"slot:home.banner"}), True, jwks={"keys": [broken]})
    sync_plugin_clients(_db(oauth_app), {"fund": policy})
    async with _partner_client(oauth_app, key) as client:
        with pytest.raises(OAuthError) as refused:
            await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert refused.value.error == "invalid_client"


def _assertion(key: ECKey, client_id: str, *, lifetime: int = 60) -> str:
    """A client assertion of ``client_id`` signed with ``key``, expiring ``lifetime`` seconds from now."""
    import secrets
    import time

    from joserfc import jwt

    now = int(time.time())
    claims = {
        "iss": client_id, "sub": client_id, "aud": TOKEN_URL, "iat": now, "exp": now + lifetime,
        "jti": secrets.token_urlsafe(8),
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)


def _assertion_grant(app: Any, assertion: str, **extra: str) -> httpx.Response:
    response: httpx.Response = app.client.post("/oauth/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        **extra,
    })
    return response


def test_a_client_assertion_must_be_short_lived(oauth_app: Any) -> None:
    """Assertion ids are kept until the assertion expires, so one living for a year would keep its id
    that long for nothing: more than an hour (authlib's default lifetime) is refused."""
    key = ECKey.generate_key("P-256", auto_kid=True)
    sync_plugin_clients(_db(oauth_app), {"fund": _partner(key)})
    assert _assertion_grant(oauth_app, _assertion(key, "plugin-fund", lifetime=3600)).status_code == 200
    refused = _assertion_grant(oauth_app, _assertion(key, "plugin-fund", lifetime=365 * 86400))
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_client"


def test_client_id_must_name_the_client_of_the_assertion(oauth_app: Any) -> None:
    """RFC 7521 section 4.2: a client_id sent with an assertion must identify the asserting client;
    a mismatch is invalid_client, not a token for the assertion's client."""
    fund, other = ECKey.generate_key("P-256", auto_kid=True), ECKey.generate_key("P-256", auto_kid=True)
    sync_plugin_clients(_db(oauth_app), {"fund": _partner(fund), "other": _partner(other)})
    same = _assertion_grant(oauth_app, _assertion(fund, "plugin-fund"), client_id="plugin-fund")
    assert same.status_code == 200, same.text
    mismatch = _assertion_grant(oauth_app, _assertion(fund, "plugin-fund"), client_id="plugin-other")
    assert mismatch.status_code in (400, 401), mismatch.text
    assert mismatch.json()["error"] == "invalid_client"
