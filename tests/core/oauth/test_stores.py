"""The code and refresh-token stores on SQLite and PostgreSQL: single use, rotation, families."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.data.types import utcnow
from fulcrum_core.errors import BadRequest
from fulcrum_core.oauth.clients import ClientStore
from fulcrum_core.oauth.codes import CodeStore
from fulcrum_core.oauth.refresh import FamilyRevoked, RefreshTokenStore


def _issue(store: RefreshTokenStore, family: str | None = None) -> str:
    return store.issue(
        family_id=family, client_id="app", subject="c-1", subject_kind="customer", scope="home:read"
    )


def test_code_is_single_use_and_bound_to_its_client(db: Database) -> None:
    """A code redeems once, only for its client; the second redemption revokes the family it started."""
    refresh = RefreshTokenStore(db)
    codes = CodeStore(db, refresh)
    codes.save(
        "code-1",
        client_id="app",
        subject="c-1",
        subject_kind="customer",
        redirect_uri="x:/cb",
        scope="home:read",
        code_challenge="c" * 43,
        code_challenge_method="S256",
    )
    assert codes.redeem("code-1", "other-app") is None
    first = codes.redeem("code-1", "app")
    assert first is not None
    token = _issue(refresh, first.family_id)
    assert codes.redeem("code-1", "app") is None
    assert refresh.rotate(token) is None
    assert codes.redeem("never-issued", "app") is None


def test_expired_code_is_refused(db: Database) -> None:
    """A code past its 60 seconds does not redeem."""
    codes = CodeStore(db, RefreshTokenStore(db))
    codes.save(
        "old",
        client_id="app",
        subject="c-1",
        subject_kind="customer",
        redirect_uri="x:/cb",
        scope="home:read",
        code_challenge="c" * 43,
        code_challenge_method="S256",
        now=utcnow() - timedelta(seconds=61),
    )
    assert codes.redeem("old", "app") is None


def test_concurrent_rotation_has_one_winner(db: Database) -> None:
    """Eight threads spending one refresh token: exactly one gets it, and the reuse revokes the family."""
    store = RefreshTokenStore(db)
    token = _issue(store)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: store.rotate(token), range(8)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    # The losers' reuse revoked the family: the winner cannot add its successor to it.
    with pytest.raises(FamilyRevoked):
        _issue(store, winners[0].family_id)


def test_issue_into_unknown_or_foreign_family_is_refused(db: Database) -> None:
    """A family id that does not exist, or belongs to another client, takes no tokens."""
    store = RefreshTokenStore(db)
    token = _issue(store)
    record = store.find(token)
    assert record is not None
    with pytest.raises(FamilyRevoked):
        _issue(store, "0" * 32)
    with pytest.raises(FamilyRevoked):
        store.issue(
            family_id=record.family_id, client_id="other", subject="c-1", subject_kind="customer", scope=""
        )


def test_revoked_and_unknown_tokens(db: Database) -> None:
    """A revoked family's tokens and unknown strings never rotate; find() still reports them revoked."""
    store = RefreshTokenStore(db)
    token = _issue(store)
    record = store.find(token)
    assert record is not None
    store.revoke_family(record.family_id)
    assert store.rotate(token) is None
    found = store.find(token)
    assert found is not None
    assert found.is_revoked()
    assert store.find("nope") is None


def test_register_refuses_bad_clients(db: Database) -> None:
    """Unknown scopes, fragment redirect URIs, keyless private_key_jwt and public client credentials fail."""
    store = ClientStore(db)
    base = {"kind": "app", "name_zh": "应用", "grant_types": ["authorization_code"], "scopes": ["home:read"]}
    bad = [
        ({**base, "auth_method": "none", "scopes": ["nope"]}, "scopes"),
        ({**base, "auth_method": "none", "redirect_uris": ["https://a.example/cb#x"]}, "redirect_uris"),
        ({**base, "auth_method": "private_key_jwt"}, "jwks"),
        ({**base, "auth_method": "none", "grant_types": ["client_credentials"]}, "grant_types"),
        ({**base, "auth_method": "none", "grant_types": ["password"]}, "grant_types"),
    ]
    for kwargs, field in bad:
        with pytest.raises(BadRequest) as refused:
            store.register("c", **kwargs)  # type: ignore[arg-type]
        assert refused.value.field == field
    assert store.get("c") is None
    assert store.register("c", auth_method="none", **base) is None  # type: ignore[arg-type]
    assert store.register("c", auth_method="none", **base) is None  # type: ignore[arg-type]  # exists: kept


def test_the_app_client_gains_app_scopes_added_by_an_upgrade(db: Database) -> None:
    """An app client registered before a new app scope existed (``pages:read``) gets it at the next
    start, keeping what it had; a client that has them all is left as it is."""
    from fulcrum_core.oauth.server import APP_CLIENT_ID, ensure_app_client
    from fulcrum_sdk.scopes import APP_SCOPES

    clients = ClientStore(db)
    old = sorted(APP_SCOPES - {"pages:read"})
    clients.register(APP_CLIENT_ID, kind="app", name_zh="手机银行", auth_method="none",
                     grant_types=["authorization_code", "refresh_token"], scopes=old, redirect_uris=["x:/cb"])
    ensure_app_client(clients, ("x:/cb",))
    client = clients.get(APP_CLIENT_ID)
    assert client is not None
    assert client.scopes == APP_SCOPES
    assert client.redirect_uris == ("x:/cb",)
    assert clients.add_scopes(APP_CLIENT_ID, APP_SCOPES) == []


def test_adding_app_scopes_keeps_a_stored_scope_the_vocabulary_no_longer_has(db: Database) -> None:
    """A client row written by an older release may name a scope since retired: adding the new app
    scopes must not fail on it (the authorization server is built with it at start)."""
    from fulcrum_core.data.models.oauth_client import OAuthClientRow

    clients = ClientStore(db)
    clients.register("old-app", kind="app", name_zh="旧", auth_method="none",
                     grant_types=["authorization_code"], scopes=["home:read"], redirect_uris=["x:/cb"])
    with db.session() as session:
        row = session.get(OAuthClientRow, "old-app")
        assert row is not None
        row.scopes = "home:read retired:scope"
    assert clients.add_scopes("old-app", ["home:read", "pages:read"]) == ["pages:read"]
    client = clients.get("old-app")
    assert client is not None
    assert client.scopes == {"home:read", "pages:read", "retired:scope"}
    with pytest.raises(BadRequest):
        clients.add_scopes("old-app", ["no-such:scope"])


def test_workers_registering_one_client_at_once_create_it_once(db: Database) -> None:
    """Workers starting on a fresh database each register the app's client (or a plugin's) on first
    use: one creates it and gets its secret, the others find it there, and none fails with a
    duplicate-key conflict (which a token request would answer 409)."""
    import threading

    store = ClientStore(db)
    start = threading.Barrier(6)

    def register(_: int) -> str | None:
        start.wait(timeout=10)
        return store.register(
            "staff-tool", kind="staff", name_zh="工具", auth_method="client_secret_basic",
            grant_types=["client_credentials"], scopes=["platform:read"],
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        secrets = list(pool.map(register, range(6)))
    made = [s for s in secrets if s is not None]
    assert len(made) == 1
    client = store.get("staff-tool")
    assert client is not None
    assert client.check_client_secret(made[0])
