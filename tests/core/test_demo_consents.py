"""The demo's seeded merchant-promo consents: given once, never given back after the customer revoked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.provider import DemoDataProvider
from fulcrum_core.demo import MERCHANT_PROMO, seed_demo_consents

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


def test_a_second_run_seeds_nothing(db: Database) -> None:
    """The consenting customers (all but the last of 0755 and 021) get one each, once."""
    store, provider = ConsentStore(db), DemoDataProvider.from_seed()
    assert seed_demo_consents(store, provider, NOW) == 8
    assert MERCHANT_PROMO in store.live_scopes("c-0755-001", now=NOW)
    assert MERCHANT_PROMO not in store.live_scopes("c-0755-005", now=NOW)
    assert seed_demo_consents(store, provider, NOW + timedelta(minutes=1)) == 0


def test_a_revoked_consent_stays_revoked_when_the_demo_runs_again(db: Database) -> None:
    """`DELETE /v1/consents/{id}` then `fulcrum demo` (as the partner guide runs it): still revoked."""
    store, provider = ConsentStore(db), DemoDataProvider.from_seed()
    seed_demo_consents(store, provider, NOW)
    (consent,) = store.list("c-0755-001", now=NOW)
    store.revoke(consent.id, "c-0755-001", now=NOW + timedelta(minutes=1))
    assert seed_demo_consents(store, provider, NOW + timedelta(minutes=2)) == 0
    assert MERCHANT_PROMO not in store.live_scopes("c-0755-001", now=NOW + timedelta(minutes=2))


def test_an_expired_seed_is_given_again(db: Database) -> None:
    """A seed lasts as long as a consent given on the consent page (180 days); a demo database kept past
    that gets them again: the customer decided nothing."""
    store, provider = ConsentStore(db), DemoDataProvider.from_seed()
    seed_demo_consents(store, provider, NOW)
    assert MERCHANT_PROMO in store.live_scopes("c-0755-001", now=NOW + timedelta(days=179))
    assert seed_demo_consents(store, provider, NOW + timedelta(days=179)) == 0
    assert MERCHANT_PROMO not in store.live_scopes("c-0755-001", now=NOW + timedelta(days=181))
    later = NOW + timedelta(days=181)
    assert seed_demo_consents(store, provider, later) == 8
    assert MERCHANT_PROMO in store.live_scopes("c-0755-001", now=later)
