"""Consents as a resource: created by the authorization flow, listed and revoked by the customer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.models.oauth_code import OAuthCodeRow
from fulcrum_core.data.types import utcnow
from fulcrum_core.oauth.clients import hash_secret
from fulcrum_core.oauth.plugin_clients import PluginClientPolicy, plugin_client_id, sync_plugin_clients
from fulcrum_core.oauth.refresh import RefreshTokenStore
from fulcrum_core.oauth.server import oauth_server
from fulcrum_core.settings import Deadlines
from fulcrum_sdk.errors import ScopeDenied
from joserfc.jwk import ECKey

from .conftest import CUSTOMER, ISSUER, REDIRECT, form_fields, pkce_pair, submit_consent

PARTNER = "fund-partner"
SCOPES = ["holdings:read", "slot:home.notice"]


def _partner_plugin(kit: Any) -> Any:
    """A partner plugin whose notice says whether it could read the customer's holdings."""

    def home_slot_offers(ctx: Any) -> list[Any]:
        try:
            ctx.data.holdings()
        except ScopeDenied:
            return [kit.offer("home.notice", "denied")]
        return [kit.offer("home.notice", "allowed")]

    return kit.plugin(PARTNER, kind="partner", scopes=SCOPES, home_slot_offers=home_slot_offers)


# The plugins here are plain functions, run in worker threads: a deadline that a loaded machine's first
# thread start cannot miss, since what these tests assert is what consent lets a plugin read, not time.
_PATIENT = {"deadlines": Deadlines(home_slot_offers=5_000), "home_budget_ms": 10_000}


def _notice(app: Any) -> list[str]:
    r = app.get("/v1/home")
    assert r.status_code == 200, r.text
    return [item["key"] for item in r.json()["slots"]["home.notice/v1"] if item["plugin"] == PARTNER]


def _authorize_url(scope: str) -> str:
    return "/oauth/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": f"plugin-{PARTNER}",
            "redirect_uri": REDIRECT,
            "scope": scope,
            "state": "p",
            "code_challenge": pkce_pair()[1],
            "code_challenge_method": "S256",
        }
    )


@pytest.fixture
def partner_app(make_app: Callable[..., Any], kit: Any) -> Any:
    """The app with the partner plugin loaded, its OAuth client registered, and the dev login on."""
    app = make_app(_partner_plugin(kit), oauth_dev_login=True, **_PATIENT)
    key = ECKey.generate_key("P-256", auto_kid=True)
    sync_plugin_clients(
        app.runtime.db,
        {
            PARTNER: PluginClientPolicy(
                "partner",
                frozenset(SCOPES),
                True,
                jwks={"keys": [key.as_dict(private=False)]},
                redirect_uris=(REDIRECT,),
            )
        },
    )
    return app


@pytest.fixture
async def partner_browser(partner_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The customer's user agent on ``partner_app``."""
    transport = httpx.ASGITransport(app=partner_app.client.app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as c:
        yield c


@pytest.mark.anyio
async def test_the_consent_page_names_the_plugin_and_its_reason_for_each_scope(partner_browser: Any) -> None:
    """It named the client 插件 fund-partner (Plugin fund-partner) and showed only the platform's
    description of each scope, where the manifest's reasons are what the customer is told to read."""
    page = await partner_browser.get(_authorize_url("holdings:read slot:home.notice"))
    assert page.status_code == 200
    assert "<strong>测试插件 fund-partner</strong>" in page.text
    assert "(Test plugin fund-partner)" in page.text
    assert "Plugin fund-partner" not in page.text
    assert page.text.count("needed for the test") == 2  # the manifest's reason, under each scope


@pytest.mark.anyio
async def test_partner_needs_consent_and_loses_it_on_delete(partner_app: Any, partner_browser: Any) -> None:
    """No consent: ScopeDenied; consent through /oauth/authorize: holdings; DELETE: denied again."""
    assert _notice(partner_app) == ["denied"]

    page = await partner_browser.get(_authorize_url("holdings:read"))
    assert page.status_code == 200
    assert "持有的理财、基金与存款产品" in page.text
    assert "wealth, fund and deposit holdings" in page.text
    assert "开发登录" in page.text  # the development login is labelled as such
    redirect = await submit_consent(partner_browser, _authorize_url("holdings:read"))
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    assert _notice(partner_app) == ["allowed"]

    with partner_app.runtime.db.read_session() as session:
        row = session.get(OAuthCodeRow, hash_secret(code))
        assert row is not None
        # The partner's tokens name the customer by a pairwise id, never the customer number.
        assert row.subject == partner_app.runtime.contexts.pairwise_id(PARTNER, CUSTOMER) != CUSTOMER

    listed = partner_app.get("/v1/consents").json()["consents"]
    assert [(c["plugin_id"], c["scopes"], c["status"]) for c in listed] == [
        (PARTNER, ["holdings:read"], "authorised")
    ]
    token = partner_app.token()
    deleted = partner_app.client.delete(
        f"/v1/consents/{listed[0]['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert deleted.status_code == 200
    assert deleted.json()["status"] == "revoked"
    assert _notice(partner_app) == ["denied"]


def test_delete_unknown_or_foreign_consent_is_404(partner_app: Any) -> None:
    """A consent id that is not the caller's is not found (never forbidden, never revealed)."""
    foreign = ConsentStore(partner_app.runtime.db).grant(
        "synthetic-retiree", PARTNER, ["holdings:read"], "test", utcnow() + timedelta(days=1)
    )
    headers = {"Authorization": f"Bearer {partner_app.token()}"}
    for consent_id in (foreign, "nope"):
        r = partner_app.client.delete(f"/v1/consents/{consent_id}", headers=headers)
        assert r.status_code == 404
        assert r.json()["field"] == "consent_id"


@pytest.mark.parametrize(("method", "scope"), [("GET", "consents:write"), ("DELETE", "consents:read")])
def test_consent_routes_need_their_scope(partner_app: Any, method: str, scope: str) -> None:
    """Listing needs consents:read and revoking consents:write: 403 naming the missing scope."""
    token = partner_app.token(scopes=[scope])
    path = "/v1/consents" if method == "GET" else "/v1/consents/x"
    r = partner_app.client.request(method, path, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert r.json()["missing_scopes"] == ["consents:read" if method == "GET" else "consents:write"]


def test_staff_token_cannot_list_consents(partner_app: Any) -> None:
    """Consents are the customer's: a client token with the scope is refused 403 customer.required."""
    token = partner_app.token("plugin-x", ["consents:read"], kind="client")
    r = partner_app.get("/v1/consents", token=token)
    assert r.status_code == 403
    assert r.json()["code"] == "customer.required"


@pytest.mark.anyio
async def test_denied_consent_creates_nothing(partner_app: Any, partner_browser: Any) -> None:
    """Refusing on the consent page creates no consent; the plugin stays denied."""
    r = await submit_consent(partner_browser, _authorize_url("holdings:read"), decision="deny")
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["access_denied"]
    assert partner_app.get("/v1/consents").json()["consents"] == []
    assert _notice(partner_app) == ["denied"]


@pytest.mark.anyio
async def test_authorizing_again_supersedes_the_earlier_consent(
    partner_app: Any, partner_browser: Any
) -> None:
    """A second authorization replaces the first consent, so a single DELETE ends the partner's access."""
    for _ in range(2):
        assert (await submit_consent(partner_browser, _authorize_url("holdings:read"))).status_code == 302
    listed = partner_app.get("/v1/consents").json()["consents"]
    assert sorted(c["status"] for c in listed) == ["authorised", "revoked"]
    live = next(c for c in listed if c["status"] == "authorised")
    token = partner_app.token()
    deleted = partner_app.client.delete(
        f"/v1/consents/{live['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert deleted.status_code == 200
    assert _notice(partner_app) == ["denied"]


@pytest.mark.anyio
async def test_the_customer_consents_to_the_scopes_the_page_showed(
    partner_app: Any, partner_browser: Any
) -> None:
    """A request naming no scope asks for all the client's: the page showed them as they were when it
    opened, but the decision read them again when it was sent, so a grant the registry widened meanwhile
    became a consent (and a code) for a scope the customer was never shown."""
    url = _authorize_url("holdings:read").replace("&scope=holdings%3Aread", "")
    page = await partner_browser.get(url)
    assert page.status_code == 200, page.text
    assert "holdings:read" in page.text
    assert "accounts:read" not in page.text
    client = oauth_server(partner_app.runtime).clients.get(plugin_client_id(PARTNER))
    assert client is not None
    wider = frozenset({*SCOPES, "accounts:read"})
    policy = PluginClientPolicy("partner", wider, True, jwks=client.jwks, redirect_uris=(REDIRECT,))
    sync_plugin_clients(partner_app.runtime.db, {PARTNER: policy})
    fields = {**form_fields(page.text), "customer": CUSTOMER, "decision": "allow"}
    decided = await partner_browser.post("/oauth/authorize", data=fields)
    assert decided.status_code == 302, decided.text
    assert "code" in parse_qs(urlsplit(decided.headers["location"]).query)
    listed = partner_app.get("/v1/consents").json()["consents"]
    assert [c["scopes"] for c in listed] == [["holdings:read"]]
    with partner_app.runtime.db.read_session() as session:
        (scope,) = session.query(OAuthCodeRow.scope).one()
    assert set(scope.split()) == set(SCOPES)


@pytest.mark.anyio
async def test_revoking_a_consent_revokes_the_partners_refresh_tokens_for_that_customer(
    partner_app: Any, partner_browser: Any
) -> None:
    """DELETE /v1/consents/{id} ends the partner backend's refresh families for this customer only."""
    await submit_consent(partner_browser, _authorize_url("holdings:read"))
    runtime = partner_app.runtime
    store = RefreshTokenStore(runtime.db)
    client = plugin_client_id(PARTNER)

    def issue(client_id: str, subject: str) -> str:
        return store.issue(family_id=None, client_id=client_id, subject=subject, subject_kind="customer",
                           scope="holdings:read")

    ours = issue(client, runtime.contexts.pairwise_id(PARTNER, CUSTOMER))
    rotated_from = issue(client, runtime.contexts.pairwise_id(PARTNER, CUSTOMER))
    later = store.rotate(rotated_from, client_id=client)  # a family that has already rotated once goes too
    assert later is not None
    someone_else = issue(client, runtime.contexts.pairwise_id(PARTNER, "c-021-001"))
    the_app = issue("fulcrum-app", CUSTOMER)

    listed = partner_app.get("/v1/consents").json()["consents"]
    token = partner_app.token()
    deleted = partner_app.client.delete(
        f"/v1/consents/{listed[0]['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert deleted.status_code == 200, deleted.text

    def revoked(value: str) -> bool:
        found = store.find(value)
        return found is None or found.is_revoked()

    assert revoked(ours)
    # Reusing the rotated token finds a revoked family.
    assert store.rotate(rotated_from, client_id=client) is None
    assert not revoked(someone_else)
    assert not revoked(the_app)


@pytest.mark.anyio
async def test_a_narrower_authorization_revokes_the_partners_broader_refresh_tokens(
    partner_app: Any, partner_browser: Any
) -> None:
    """Authorizing again supersedes the earlier consent: the refresh families minted under it (which
    carry its scopes) go too, so the partner cannot keep minting tokens for a scope the customer
    has just left out."""
    runtime = partner_app.runtime
    client = plugin_client_id(PARTNER)
    wider = oauth_server(runtime).clients.get(client)
    assert wider is not None
    policy = PluginClientPolicy(
        "partner", frozenset({*SCOPES, "pension:read"}), True, jwks=wider.jwks, redirect_uris=(REDIRECT,)
    )
    sync_plugin_clients(runtime.db, {PARTNER: policy})
    first = await submit_consent(partner_browser, _authorize_url("holdings:read pension:read"))
    assert first.status_code == 302
    store = RefreshTokenStore(runtime.db)
    # What the partner's backend holds after redeeming that code.
    pairwise = runtime.contexts.pairwise_id(PARTNER, CUSTOMER)
    earlier = store.issue(
        family_id=None, client_id=client, subject=pairwise, subject_kind="customer",
        scope="holdings:read pension:read",
    )

    assert (await submit_consent(partner_browser, _authorize_url("holdings:read"))).status_code == 302
    live = [c for c in partner_app.get("/v1/consents").json()["consents"] if c["status"] == "authorised"]
    assert [c["scopes"] for c in live] == [["holdings:read"]]
    assert store.rotate(earlier, client_id=client) is None


INTERNAL = "wealth-dept"


@pytest.mark.anyio
async def test_the_consent_list_says_what_revoking_an_internal_plugins_consent_does(
    make_app: Callable[..., Any], kit: Any
) -> None:
    """An internal (department) plugin reads customer data under the bank's grant, not the customer's
    consent: its consent from the authorization flow is listed with ``revoke_effect`` ``tokens_only``,
    and revoking it ends its refresh tokens while the plugin still reads the data; a partner's
    consent is ``data_access`` (revoking it ends the partner's reading too)."""

    def home_slot_offers(ctx: Any) -> list[Any]:
        try:
            ctx.data.holdings()
        except ScopeDenied:
            return [kit.offer("home.notice", "denied")]
        return [kit.offer("home.notice", "allowed")]

    internal = kit.plugin(INTERNAL, kind="department", scopes=SCOPES, home_slot_offers=home_slot_offers)
    app = make_app(_partner_plugin(kit), internal, oauth_dev_login=True, **_PATIENT)
    key = ECKey.generate_key("P-256", auto_kid=True)
    sync_plugin_clients(
        app.runtime.db,
        {
            PARTNER: PluginClientPolicy(
                "partner",
                frozenset(SCOPES),
                True,
                jwks={"keys": [key.as_dict(private=False)]},
                redirect_uris=(REDIRECT,),
            ),
            INTERNAL: PluginClientPolicy("department", frozenset(SCOPES), True, redirect_uris=(REDIRECT,)),
        },
    )

    def notices() -> dict[str, str]:
        r = app.get("/v1/home")
        assert r.status_code == 200, r.text
        return {item["plugin"]: item["key"] for item in r.json()["slots"]["home.notice/v1"]}

    transport = httpx.ASGITransport(app=app.client.app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
        for plugin in (INTERNAL, PARTNER):
            url = _authorize_url("holdings:read").replace(f"plugin-{PARTNER}", f"plugin-{plugin}")
            assert (await submit_consent(browser, url)).status_code == 302
    assert notices() == {INTERNAL: "allowed", PARTNER: "allowed"}
    listed = {c["plugin_id"]: c for c in app.get("/v1/consents").json()["consents"]}
    assert {p: c["revoke_effect"] for p, c in listed.items()} == {
        INTERNAL: "tokens_only",
        PARTNER: "data_access",
    }
    store = RefreshTokenStore(app.runtime.db)
    family = store.issue(
        family_id=None,
        client_id=plugin_client_id(INTERNAL),
        subject=CUSTOMER,
        subject_kind="customer",
        scope="holdings:read",
    )
    headers = {"Authorization": f"Bearer {app.token()}"}
    for plugin in (INTERNAL, PARTNER):
        deleted = app.client.delete(f"/v1/consents/{listed[plugin]['id']}", headers=headers)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["revoke_effect"] == listed[plugin]["revoke_effect"]
    # The internal plugin's backend is signed out.
    assert store.rotate(family, client_id=plugin_client_id(INTERNAL)) is None
    assert notices() == {INTERNAL: "allowed", PARTNER: "denied"}  # as the list said
