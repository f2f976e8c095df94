"""``ConsentStore``: only authorised, unexpired consents are live; revocation and expiry take effect."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.errors import BadRequest, Conflict, NotFound
from sqlalchemy import event

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=30)
SCOPES = frozenset({"location:city", "profile:basic"})


@pytest.fixture
def store(db: Database) -> ConsentStore:
    """A consent store on a migrated database."""
    return ConsentStore(db)


def test_granted_consent_is_live(store: ConsentStore) -> None:
    """An authorised consent gives its plugin exactly its scopes."""
    store.grant("c-1", "merchant-promo", SCOPES, "本地优惠", LATER, now=NOW)
    assert store.live_scopes("c-1", now=NOW) == {"merchant-promo": SCOPES}
    assert store.live_scopes("c-2", now=NOW) == {}


def test_consents_for_one_plugin_combine(store: ConsentStore) -> None:
    """Two live consents for the same plugin give the union of their scopes."""
    store.grant("c-1", "p", {"location:city"}, "a", LATER, now=NOW)
    store.grant("c-1", "p", {"holdings:read"}, "b", LATER, now=NOW)
    assert store.live_scopes("c-1", now=NOW) == {"p": frozenset({"location:city", "holdings:read"})}


def test_expired_consent_is_not_live(store: ConsentStore) -> None:
    """Past its expiry a consent gives nothing and lists as ``expired``."""
    consent_id = store.grant("c-1", "p", SCOPES, "x", NOW + timedelta(hours=1), now=NOW)
    after = NOW + timedelta(hours=2)
    assert store.live_scopes("c-1", now=after) == {}
    [view] = store.list("c-1", now=after)
    assert (view.id, view.status) == (consent_id, "expired")


def test_revoked_consent_is_not_live_on_the_next_read(store: ConsentStore) -> None:
    """Revoking takes effect immediately and records when."""
    consent_id = store.grant("c-1", "p", SCOPES, "x", LATER, now=NOW)
    view = store.revoke(consent_id, "c-1", now=NOW + timedelta(minutes=1))
    assert view.status == "revoked"
    assert view.revoked_at == NOW + timedelta(minutes=1)
    assert store.live_scopes("c-1", now=NOW + timedelta(minutes=2)) == {}


def test_revoking_twice_changes_nothing(store: ConsentStore) -> None:
    """A second revoke keeps the first revocation time."""
    consent_id = store.grant("c-1", "p", SCOPES, "x", LATER, now=NOW)
    first = store.revoke(consent_id, "c-1", now=NOW)
    second = store.revoke(consent_id, "c-1", now=NOW + timedelta(hours=1))
    assert second.revoked_at == first.revoked_at


def test_another_customers_consent_is_not_found(store: ConsentStore) -> None:
    """A customer cannot see or revoke someone else's consent: it is reported as not found."""
    consent_id = store.grant("c-1", "p", SCOPES, "x", LATER, now=NOW)
    with pytest.raises(NotFound):
        store.revoke(consent_id, "c-2", now=NOW)
    with pytest.raises(NotFound):
        store.get(consent_id, "c-2")
    with pytest.raises(NotFound):
        store.revoke("no-such-id", "c-1", now=NOW)
    assert store.live_scopes("c-1", now=NOW) == {"p": SCOPES}


def test_awaiting_consent_becomes_live_only_when_authorised(store: ConsentStore) -> None:
    """A requested consent gives nothing until the customer authorises it; authorising twice is 409."""
    consent_id = store.request("c-1", "p", SCOPES, "x", LATER, now=NOW)
    assert store.live_scopes("c-1", now=NOW) == {}
    assert store.get(consent_id, "c-1", now=NOW).status == "awaiting"
    assert store.authorise(consent_id, "c-1", now=NOW).status == "authorised"
    assert store.live_scopes("c-1", now=NOW) == {"p": SCOPES}
    with pytest.raises(Conflict):
        store.authorise(consent_id, "c-1", now=NOW)


def test_list_is_newest_first(store: ConsentStore) -> None:
    """The customer's consents are listed newest first."""
    old = store.grant("c-1", "a", SCOPES, "x", LATER, now=NOW)
    new = store.grant("c-1", "b", SCOPES, "x", LATER, now=NOW + timedelta(minutes=1))
    assert [v.id for v in store.list("c-1", now=NOW)] == [new, old]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"scopes": set()}, "scopes"),
        ({"scopes": {"no:such"}}, "scopes"),
        ({"purpose": "  "}, "purpose"),
        ({"purpose": "x" * 501}, "purpose"),
        ({"expires_at": NOW - timedelta(seconds=1)}, "expires_at"),
        ({"expires_at": datetime(2027, 1, 1)}, "expires_at"),  # noqa: DTZ001
        ({"customer_ref": ""}, "customer_ref"),
        ({"plugin_id": ""}, "plugin_id"),
    ],
)
def test_bad_consents_are_refused_naming_the_field(store: ConsentStore, kwargs: dict, field: str) -> None:  # type: ignore[type-arg]
    """Invalid input is a 400 naming the field, and nothing is written."""
    args = {"customer_ref": "c-1", "plugin_id": "p", "scopes": SCOPES, "purpose": "x", "expires_at": LATER}
    args.update(kwargs)
    with pytest.raises(BadRequest) as info:
        store.grant(**args, now=NOW)
    assert info.value.field == field
    assert store.list("c-1", now=NOW) == []


def test_reading_live_consents_is_one_statement(db: Database, store: ConsentStore) -> None:
    """The request path's consent read is one SELECT, with no BEGIN before it (both backends)."""
    store.grant("c-1", "p", SCOPES, "x", LATER, now=NOW)
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert store.live_scopes("c-1", now=NOW) == {"p": SCOPES}
        assert store.live_scopes("c-2", now=NOW) == {}
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert seen == ["SELECT", "SELECT"]


def test_live_consents_are_read_with_one_prebuilt_statement(db: Database, store: ConsentStore) -> None:
    """Every customer's read sends the same SQL (the customer and the instant travel as bound
    parameters, nothing is rendered per read), and still answers each customer's own consents at the
    instant asked."""
    store.grant("c-1", "p", SCOPES, "x", NOW + timedelta(hours=1), now=NOW)
    store.grant("c-2", "q", {"location:city"}, "y", LATER, now=NOW)
    sent: list[tuple[str, str]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        sent.append((statement, str(parameters)))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert store.live_scopes("c-1", now=NOW) == {"p": SCOPES}
        assert store.live_scopes("c-2", now=NOW) == {"q": frozenset({"location:city"})}
        assert store.live_scopes("c-1", now=NOW + timedelta(hours=2)) == {}
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(sent) == 3
    assert len({statement for statement, _ in sent}) == 1
    assert all("c-" not in statement for statement, _ in sent)
    assert ["c-1" in sent[0][1], "c-2" in sent[1][1], "c-1" in sent[2][1]] == [True, True, True]


def test_live_consents_come_back_as_utc_instants(store: ConsentStore) -> None:
    """The read converts what the driver returns as the column's type does (an aware UTC datetime,
    from SQLite's text too), and compares expiry with the instant asked, bound the same way."""
    expires = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
    store.grant("c-1", "p", SCOPES, "x", expires, now=NOW)
    store.grant("c-1", "q", SCOPES, "y", NOW + timedelta(seconds=1), now=NOW)
    found = {consent.plugin_id: consent for consent in store.reader("c-1", NOW)()}
    assert found["p"].expires_at == expires
    assert found["p"].expires_at.tzinfo is UTC
    assert found["p"].scopes == SCOPES
    assert [c.plugin_id for c in store.reader("c-1", NOW + timedelta(seconds=1))()] == ["p"]


def test_supersede_revokes_the_earlier_consents_of_that_plugin_only(store: ConsentStore) -> None:
    """The new consent replaces the customer's awaiting and authorised ones for the plugin; another
    plugin's consent and another customer's stay as they were."""
    earlier = store.grant("c-1", "p", {"location:city"}, "a", LATER, now=NOW)
    awaiting = store.request("c-1", "p", {"location:city"}, "a", LATER, now=NOW)
    other_plugin = store.grant("c-1", "q", {"location:city"}, "a", LATER, now=NOW)
    other_customer = store.grant("c-2", "p", {"location:city"}, "a", LATER, now=NOW)
    new, superseded = store.supersede("c-1", "p", {"holdings:read"}, "b", LATER, now=NOW)
    assert superseded
    assert [store.get(i, "c-1", now=NOW).status for i in (earlier, awaiting, new, other_plugin)] == [
        "revoked", "revoked", "authorised", "authorised",
    ]
    assert store.get(other_customer, "c-2", now=NOW).status == "authorised"
    live = {"p": frozenset({"holdings:read"}), "q": frozenset({"location:city"})}
    assert store.live_scopes("c-1", now=NOW) == live
    assert store.supersede("c-3", "p", {"holdings:read"}, "b", LATER, now=NOW)[1] is False


def test_concurrent_supersedes_leave_one_live_consent(store: ConsentStore) -> None:
    """Eight authorizations of one plugin by one customer at once (a consent form sent again and
    again): one at a time, so exactly one consent is left live, whether an earlier one existed or not."""
    for earlier in (False, True):
        customer = f"c-{earlier}"
        if earlier:
            store.grant(customer, "p", {"location:city"}, "a", LATER, now=NOW)
        start = threading.Barrier(8)

        def authorize(_: int, customer: str = customer, start: threading.Barrier = start) -> str:
            start.wait(timeout=10)
            return store.supersede(customer, "p", {"holdings:read"}, "b", LATER, now=NOW)[0]

        with ThreadPoolExecutor(max_workers=8) as pool:
            made = list(pool.map(authorize, range(8)))
        statuses = [c.status for c in store.list(customer, now=NOW)]
        assert statuses.count("authorised") == 1, statuses
        assert len(set(made)) == 8
        assert len(statuses) == 8 + int(earlier)


def test_supersede_leaves_an_expired_consent_expired(store: ConsentStore) -> None:
    """A consent that has run out is not live, so nothing supersedes it: it stays listed as expired."""
    old = store.grant("c-1", "p", {"location:city"}, "a", NOW + timedelta(days=1), now=NOW)
    assert store.supersede("c-1", "p", {"location:city"}, "b", LATER, now=NOW + timedelta(days=2))[1] is False
    assert store.get(old, "c-1", now=NOW + timedelta(days=2)).status == "expired"
