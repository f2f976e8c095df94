"""The code and refresh-token stores on SQLite and PostgreSQL: single use, rotation, families."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.data.types import utcnow
from fulcrum_core.errors import BadRequest
from fulcrum_core.oauth.clients import ClientStore
from fulcrum_core.oauth.codes import CodeStore
from fulcrum_core.oauth.refresh import (
    GRACE_REUSES,
    REFRESH_TTL,
    FamilyRevoked,
    RefreshToken,
    RefreshTokenStore,
)

GRACE = 10


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
    assert refresh.rotate(token, client_id="app") is None
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


def _rotate_at_once(store: RefreshTokenStore, token: str, uses: int) -> list[object]:
    """``uses`` threads presenting ``token`` together (released by one barrier); what each got."""
    barrier = threading.Barrier(uses)

    def use(_: int) -> object:
        barrier.wait(timeout=30)
        return store.rotate(token, client_id="app")

    with ThreadPoolExecutor(max_workers=uses) as pool:
        return list(pool.map(use, range(uses)))


def _family_live(store: RefreshTokenStore, family_id: str) -> bool:
    try:
        _issue(store, family_id)
    except FamilyRevoked:
        return False
    return True


def test_concurrent_rotation_has_one_winner(db: Database) -> None:
    """Without a grace period (0), eight threads spending one refresh token: exactly one gets it, and
    the reuse revokes the family."""
    store = RefreshTokenStore(db, reuse_grace_seconds=0)
    token = _issue(store)
    results = _rotate_at_once(store, token, 8)
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    # The losers' reuse revoked the family: the winner cannot add its successor to it.
    with pytest.raises(FamilyRevoked):
        _issue(store, winners[0].family_id)


def test_concurrent_refreshes_within_the_grace_period_all_succeed(db: Database) -> None:
    """Two screens (and a retry) presenting one token at once: each gets its record, the family stays
    live and takes each one's successor, and the successors all rotate in turn."""
    store = RefreshTokenStore(db, reuse_grace_seconds=GRACE)
    token = _issue(store)
    results = _rotate_at_once(store, token, 1 + GRACE_REUSES)
    assert all(r is not None for r in results), results
    record = store.find(token)
    assert record is not None
    successors = [_issue(store, record.family_id) for _ in results]
    for successor in successors:
        assert store.rotate(successor, client_id="app") is not None
    assert _family_live(store, record.family_id)


def test_the_grace_period_accepts_a_token_a_bounded_number_of_times(db: Database) -> None:
    """Eight uses of one token at once within its grace period: the first and ``GRACE_REUSES``
    repeats succeed, the next is a reuse and revokes the family (a stolen token mints few branches)."""
    store = RefreshTokenStore(db, reuse_grace_seconds=GRACE)
    token = _issue(store)
    results = _rotate_at_once(store, token, 8)
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 + GRACE_REUSES
    record = store.find(token)
    assert record is not None
    assert not _family_live(store, record.family_id)


def _spent(db: Database, grace: int) -> tuple[RefreshTokenStore, str, datetime, RefreshToken, str]:
    """A store with the grace period ``grace``, a token its client spent at ``start``, the record that
    rotation returned, and the successor issued into its family."""
    store = RefreshTokenStore(db, reuse_grace_seconds=grace)
    token = _issue(store)
    start = utcnow()
    first = store.rotate(token, client_id="app", now=start)
    assert first is not None
    return store, token, start, first, _issue(store, first.family_id)

def test_a_repeat_keeps_the_successor_issued_first(db: Database) -> None:
    """A repeat within the grace period issues a second successor; the first stays valid (both branches
    live), and one repeat more than ``GRACE_REUSES`` revokes the family and both branches."""
    store, token, start, first, successor = _spent(db, GRACE)
    branches = [successor]
    for n in range(GRACE_REUSES):
        again = store.rotate(token, client_id="app", now=start + timedelta(seconds=1 + n))
        assert again is not None
        assert again.family_id == first.family_id
        branches.append(_issue(store, first.family_id))
    for branch in branches:
        record = store.find(branch)
        assert record is not None
        assert not record.is_revoked()
    assert store.rotate(token, client_id="app", now=start + timedelta(seconds=GRACE)) is None
    for branch in branches:
        assert store.rotate(branch, client_id="app") is None


def test_a_repeat_that_finds_its_token_expired_is_refused_without_revoking(db: Database) -> None:
    """A token spent in its last seconds, repeated within the grace period just after it expired, is
    refused (nothing expired is revived) but is no reuse: the successor the first use returned stays
    valid. With the grace period 0 the same repeat is a reuse and revokes the family."""
    for grace in (GRACE, 0):
        store = RefreshTokenStore(db, reuse_grace_seconds=grace)
        start = utcnow()
        token = store.issue(
            family_id=None, client_id="app", subject="c-1", subject_kind="customer", scope="home:read",
            now=start - REFRESH_TTL + timedelta(seconds=2),  # expires 2 s after start
        )
        first = store.rotate(token, client_id="app", now=start)
        assert first is not None
        successor = _issue(store, first.family_id)
        assert store.rotate(token, client_id="app", now=start + timedelta(seconds=3)) is None
        assert (store.rotate(successor, client_id="app") is not None) is bool(grace), grace


@pytest.mark.parametrize("grace", [GRACE, 0])
def test_a_reuse_after_the_grace_period_revokes_the_family(db: Database, grace: int) -> None:
    """A repeat at the grace period's last instant is accepted; later than that (with the grace period
    0: at all) the token's use is a reuse: refused, and the successors it was rotated into are revoked."""
    store, token, start, first, successor = _spent(db, grace)
    successors = [successor]
    if grace:
        assert store.rotate(token, client_id="app", now=start + timedelta(seconds=grace)) is not None
        successors.append(_issue(store, first.family_id))
    assert store.rotate(token, client_id="app", now=start + timedelta(seconds=grace, milliseconds=1)) is None
    for successor in successors:
        assert store.rotate(successor, client_id="app") is None
    assert not _family_live(store, first.family_id)


def test_another_client_presenting_a_token_revokes_the_family(db: Database) -> None:
    """A token presented by a client it was not issued to is refused even within the grace period, and
    it leaked: its family is revoked, spent or not."""
    store = RefreshTokenStore(db, reuse_grace_seconds=GRACE)
    spent = _issue(store)
    first = store.rotate(spent, client_id="app")
    assert first is not None
    successor = _issue(store, first.family_id)
    assert store.rotate(spent, client_id="other") is None
    assert store.rotate(successor, client_id="app") is None
    live = _issue(store)
    assert store.rotate(live, client_id="other") is None
    assert store.rotate(live, client_id="app") is None


def test_the_grace_period_never_revives_a_revoked_or_expired_token(db: Database) -> None:
    """Within the grace period a token of a revoked family (RFC 7009, a consent withdrawn) or an
    expired one is still refused, and nothing joins the revoked family."""
    store = RefreshTokenStore(db, reuse_grace_seconds=GRACE)
    token = _issue(store)
    first = store.rotate(token, client_id="app")
    assert first is not None
    store.revoke_family(first.family_id)
    assert store.rotate(token, client_id="app") is None
    assert not _family_live(store, first.family_id)
    start = utcnow()
    ending = store.issue(  # expires two seconds after ``start``
        family_id=None, client_id="app", subject="c-1", subject_kind="customer", scope="home:read",
        now=start - REFRESH_TTL + timedelta(seconds=2),
    )
    assert store.rotate(ending, client_id="app", now=start) is not None
    assert store.rotate(ending, client_id="app", now=start + timedelta(seconds=3)) is None


def _repeats_racing_a_revocation(store: RefreshTokenStore) -> tuple[str, list[str]]:
    """Three repeats of a spent token (rotate, then issue the successor, as the token endpoint does)
    and the family's revocation, released together: the family and the successors issued."""
    token = _issue(store)
    first = store.rotate(token, client_id="app")
    assert first is not None
    family = first.family_id
    barrier = threading.Barrier(4)
    issued: list[str] = []

    def refresh() -> None:
        barrier.wait(timeout=30)
        if store.rotate(token, client_id="app") is not None:
            with contextlib.suppress(FamilyRevoked):
                issued.append(_issue(store, family))

    def revoke() -> None:
        barrier.wait(timeout=30)
        store.revoke_family(family)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for done in [pool.submit(refresh) for _ in range(3)] + [pool.submit(revoke)]:
            done.result()
    return family, issued


def test_repeats_racing_a_revocation_leave_no_live_token(db: Database) -> None:
    """Refreshes within the grace period racing the family's revocation (RFC 7009, a consent withdrawn):
    whatever the order, no token of the family is left live and nothing joins it afterwards."""
    store = RefreshTokenStore(db, reuse_grace_seconds=GRACE)
    for _ in range(5):
        family, issued = _repeats_racing_a_revocation(store)
        for value in issued:
            found = store.find(value)
            assert found is not None
            assert found.is_revoked()
        assert not _family_live(store, family)


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
    assert store.rotate(token, client_id="app") is None
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
