"""Partners see the customer's accounts under pairwise ids, never the bank's (which name the customer).

Over the demo bank's seed (``acct-0755-001-1`` is customer ``c-0755-001``'s) and the shared ``db``
fixture: SQLite, and PostgreSQL when it is configured.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.provider import DemoDataProvider
from fulcrum_core.data.types import utcnow
from fulcrum_core.dispatch.accounts import pairwise_account_id
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.plugins import PluginSet, get_plugin_manager
from fulcrum_core.settings import Settings

pytestmark = pytest.mark.anyio

CUSTOMER = "c-0755-001"
BANK_IDS = ["acct-0755-001-1", "acct-0755-001-2"]
OTHER_CUSTOMER = "c-0755-002"
SCOPES = ["accounts:read", "search:contribute"]


@pytest.fixture
def plugins(settings: Settings, kit: Any) -> PluginSet:
    """Two partners and one department plugin, each granted accounts:read."""
    return get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[
            kit.plugin(pid, kind=kind, scopes=SCOPES, search=lambda ctx, query: [])
            for pid, kind in (("partner-a", "partner"), ("partner-b", "partner"), ("dept", "department"))
        ],
    )


@pytest.fixture
def provider() -> DemoDataProvider:
    """The demo bank's seeded customers."""
    return DemoDataProvider.from_seed()


@pytest.fixture
def factory(
    settings: Settings, db: Database, plugins: PluginSet, provider: DemoDataProvider
) -> ContextFactory:
    """Contexts over the seed, with both partners consented to the customer's accounts."""
    now = utcnow()
    store = ConsentStore(db)
    for customer in (CUSTOMER, OTHER_CUSTOMER):
        for partner in ("partner-a", "partner-b"):
            store.grant(customer, partner, ["accounts:read"], "缴费", now + timedelta(days=30), now=now)
    return ContextFactory(settings=settings, db=db, provider=provider, plugins=plugins)


def _seen(factory: ContextFactory, plugins: PluginSet, plugin_id: str, customer: str = CUSTOMER) -> list[str]:
    """The account ids ``plugin_id`` reads for ``customer`` in a new request."""
    contexts = factory.for_request(customer, request_id="r-1")
    accounts = contexts.for_plugin(plugins.loaded[plugin_id]).data.accounts()
    assert accounts is not None
    return [account.id for account in accounts.items]


def test_partners_see_pairwise_account_ids_and_internal_plugins_the_banks(
    factory: ContextFactory, plugins: PluginSet
) -> None:
    """Two partners see different ids for the same accounts, none naming the customer or equal to the
    bank's; each partner's are stable across requests and are the documented HMAC; a department
    plugin sees the bank's own."""
    a, b = _seen(factory, plugins, "partner-a"), _seen(factory, plugins, "partner-b")
    assert len(set(a)) == len(set(b)) == 2
    assert not set(a) & set(b)
    for seen in (*a, *b):
        assert "0755" not in seen
        assert seen not in BANK_IDS
    assert _seen(factory, plugins, "partner-a") == a
    secret = factory._pairwise_secret()
    assert a == [pairwise_account_id(secret, "partner-a", CUSTOMER, bank) for bank in BANK_IDS]
    assert _seen(factory, plugins, "dept") == BANK_IDS
    # The rest of the record is the bank's: only the ids differ.
    contexts = factory.for_request(CUSTOMER, request_id="r-2")
    partner = contexts.for_plugin(plugins.loaded["partner-a"]).data.accounts()
    bank = contexts.for_plugin(plugins.loaded["dept"]).data.accounts()
    assert partner is not None
    assert bank is not None
    assert [msgspec.structs.replace(x, id="") for x in partner.items] == [
        msgspec.structs.replace(x, id="") for x in bank.items
    ]
    assert (partner.monthly_income_fen, partner.monthly_spending_fen) == (
        bank.monthly_income_fen, bank.monthly_spending_fen
    )
    assert contexts.for_plugin(plugins.loaded["partner-a"]).data.accounts() is partner  # mapped once


def test_the_same_account_id_of_two_customers_is_two_ids_to_a_partner() -> None:
    """Account ids unique only per customer (``acct-demand``) still give a partner no join key."""
    secret = b"s"
    assert pairwise_account_id(secret, "p", "c-1", "acct-demand") != pairwise_account_id(
        secret, "p", "c-2", "acct-demand"
    )
    assert pairwise_account_id(secret, "p", "c-1", "x") != pairwise_account_id(secret, "q", "c-1", "x")
