"""Partners see the customer's accounts under pairwise ids, never the bank's (which name the customer),
and a transaction naming an account maps the partner's id back to the bank's, refusing any other.

Over the demo bank's seed (``acct-0755-001-1`` is customer ``c-0755-001``'s) and the shared ``db``
fixture: SQLite, and PostgreSQL when it is configured.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.models import TransactionRow
from fulcrum_core.data.provider import DemoDataProvider
from fulcrum_core.data.types import utcnow
from fulcrum_core.dispatch.accounts import pairwise_account_id
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.errors import Forbidden, ServiceUnavailable, Unprocessable
from fulcrum_core.oauth.server import APP_CLIENT_ID
from fulcrum_core.plugins import PluginSet, get_plugin_manager
from fulcrum_core.settings import Deadlines, Settings
from fulcrum_core.transactions.service import TransactionService
from fulcrum_sdk.models import LocalizedText, TransactionRequest, TransactionResult, TransactionType
from sqlalchemy import select

pytestmark = pytest.mark.anyio

CUSTOMER = "c-0755-001"
BANK_IDS = ["acct-0755-001-1", "acct-0755-001-2"]
OTHER_CUSTOMER = "c-0755-002"
SCOPES = ["accounts:read", "search:contribute", "transactions:write"]


class PayParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``pay.bill``: pay a bill from one of the customer's accounts (optionally to another of theirs)."""

    from_account: str = msgspec.field(name="from")
    amount_fen: int
    to_account: str | None = None


PAY = TransactionType(
    key="pay.bill", name=LocalizedText(zh_CN="缴费", en="Pay a bill"), params=PayParams,
    risk_level="R1", amount_field="amount_fen", account_fields=frozenset({"from_account", "to_account"}),
)


class Payer:
    """The plugins' ``execute_transaction``: records what it was sent; ``hang`` blocks until released."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.calls: list[tuple[str, TransactionRequest]] = []
        self.hang = False

    def plugin(self, kit: Any, plugin_id: str, kind: str, scopes: list[str] = SCOPES) -> Any:
        """A plugin of ``kind`` granted ``scopes`` owning ``pay.bill`` (under a key of its own id)."""
        key = f"{plugin_id.replace('-', '_')}.bill"

        def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
            register(msgspec.structs.replace(PAY, key=key))

        def execute_transaction(ctx: Any, request: TransactionRequest) -> TransactionResult:
            self.calls.append((plugin_id, request))
            if self.hang:
                self.release.wait(30)
            return TransactionResult(status="succeeded", reference="ok")

        return kit.plugin(
            plugin_id, kind=kind, scopes=scopes, transaction_types=[key],
            register_transaction_types=register_transaction_types, execute_transaction=execute_transaction,
            search=lambda ctx, query: [],
        )


@pytest.fixture
def payer(release: threading.Event) -> Payer:
    """The test plugins' shared behaviour and call log."""
    return Payer(release)


@pytest.fixture
def plugins(settings: Settings, kit: Any, payer: Payer) -> PluginSet:
    """Two partners and one department plugin, each granted accounts:read and owning a payment type."""
    return get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[
            payer.plugin(kit, "partner-a", "partner"),
            payer.plugin(kit, "partner-b", "partner"),
            payer.plugin(kit, "dept", "department"),
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
    factory: ContextFactory, plugins: PluginSet, settings: Settings, db: Database, provider: DemoDataProvider
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
    # Another worker, holding the same pairwise secret, gives the partner the same ids.
    another = ContextFactory(settings=settings, db=db, provider=provider, plugins=plugins)
    assert _seen(another, plugins, "partner-a") == a
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


# --- transactions ------------------------------------------------------------------------------------


@pytest.fixture
def service(
    settings: Settings, db: Database, plugins: PluginSet, factory: ContextFactory, provider: DemoDataProvider
) -> Iterator[TransactionService]:
    """The transaction service over the three plugins (a short deadline, for the reconciliation test)."""
    conf = msgspec.structs.replace(settings, deadlines=Deadlines(execute_transaction=200))
    dispatcher = Dispatcher(conf)
    yield TransactionService(
        settings=conf, db=db, plugins=plugins, dispatcher=dispatcher, contexts=factory, provider=provider
    )
    dispatcher.close()


def _body(plugin_id: str, account: Any, **extra: Any) -> bytes:
    return msgspec.json.encode({
        "type": f"{plugin_id.replace('-', '_')}.bill", "params": {"from": account, "amount_fen": 100, **extra}
    })


def _journaled(db: Database) -> list[dict[str, Any]]:
    with db.read_session() as session:
        return [dict(row.params) for row in session.scalars(select(TransactionRow))]


async def test_a_partners_account_id_round_trips_to_the_banks(
    service: TransactionService, factory: ContextFactory, plugins: PluginSet, payer: Payer, db: Database
) -> None:
    """The partner's own id in a transaction reaches the partner as sent, and the journal keeps the
    bank's account id (both account fields, the optional one too)."""
    seen = _seen(factory, plugins, "partner-a")
    outcome = await service.submit(
        CUSTOMER, "k-1", _body("partner-a", seen[1], to_account=seen[0]), client_id=APP_CLIENT_ID
    )
    assert outcome.status_code == 201, outcome.body
    [(plugin_id, request)] = payer.calls
    assert plugin_id == "partner-a"
    assert (request.params.from_account, request.params.to_account) == (seen[1], seen[0])
    assert _journaled(db) == [{"from": BANK_IDS[1], "to_account": BANK_IDS[0], "amount_fen": 100}]


def test_the_types_list_names_the_account_parameters(service: TransactionService) -> None:
    """``GET /v1/transaction-types`` tells the app which parameters take an account id, by their
    JSON names."""
    listed = {item.key: item.account_params for item in service.types_for(CUSTOMER).items}
    keys = ("partner_a.bill", "partner_b.bill", "dept.bill")
    assert listed == {key: ["from", "to_account"] for key in keys}


async def test_an_internal_plugins_transaction_names_the_banks_account(
    service: TransactionService, payer: Payer, db: Database
) -> None:
    """A department plugin is sent, and the journal keeps, the bank's id as given."""
    outcome = await service.submit(CUSTOMER, "k-1", _body("dept", BANK_IDS[0]), client_id=APP_CLIENT_ID)
    assert outcome.status_code == 201, outcome.body
    assert payer.calls[0][1].params.from_account == BANK_IDS[0]
    assert _journaled(db) == [{"from": BANK_IDS[0], "to_account": None, "amount_fen": 100}]


@pytest.mark.parametrize("forged", ["bank", "other-partner", "other-customer", "made-up", "number"])
async def test_an_account_id_the_partner_was_never_given_is_refused(
    service: TransactionService, factory: ContextFactory, plugins: PluginSet, payer: Payer, db: Database,
    forged: str,
) -> None:
    """The bank's id, another partner's id for the same account, the partner's id for another
    customer's account, a made-up id or no text at all: 422 naming the field, nothing journaled."""
    account: Any = {
        "bank": BANK_IDS[0],
        "other-partner": _seen(factory, plugins, "partner-b")[0],
        "other-customer": _seen(factory, plugins, "partner-a", OTHER_CUSTOMER)[0],
        "made-up": "0" * 32,
        "number": 7,
    }[forged]
    with pytest.raises(Unprocessable) as info:
        await service.submit(CUSTOMER, "k-1", _body("partner-a", account), client_id=APP_CLIENT_ID)
    expected = "transaction.invalid_params" if forged == "number" else "transaction.unknown_account"
    assert (info.value.code, info.value.field) == (expected, "params.from")
    assert (payer.calls, _journaled(db)) == ([], [])


async def test_an_optional_account_field_is_checked_too(
    service: TransactionService, factory: ContextFactory, plugins: PluginSet, payer: Payer
) -> None:
    """A forged id in the second account field is named by its own field."""
    seen = _seen(factory, plugins, "partner-a")
    with pytest.raises(Unprocessable) as info:
        await service.submit(
            CUSTOMER, "k-1", _body("partner-a", seen[0], to_account=BANK_IDS[1]), client_id=APP_CLIENT_ID
        )
    assert (info.value.code, info.value.field) == ("transaction.unknown_account", "params.to_account")
    assert payer.calls == []


async def test_without_consent_to_accounts_no_account_id_is_accepted(
    service: TransactionService, factory: ContextFactory, plugins: PluginSet, payer: Payer, db: Database
) -> None:
    """Once the customer revokes the partner's accounts:read, even the id it was shown is refused."""
    seen = _seen(factory, plugins, "partner-a")
    store = ConsentStore(db)
    for consent in store.list(CUSTOMER):
        if consent.plugin_id == "partner-a":
            store.revoke(consent.id, CUSTOMER)
    with pytest.raises(Unprocessable) as info:
        await service.submit(CUSTOMER, "k-1", _body("partner-a", seen[0]), client_id=APP_CLIENT_ID)
    assert (info.value.code, info.value.field) == ("transaction.unknown_account", "params.from")
    assert "not let this plugin read" in str(info.value)
    assert payer.calls == []


async def test_unreadable_consents_are_a_503_to_retry_not_a_refusal(
    service: TransactionService, factory: ContextFactory, plugins: PluginSet, payer: Payer,
    monkeypatch: pytest.MonkeyPatch, db: Database,
) -> None:
    """When the customer's consents cannot be read, the partner's account cannot be checked: 503
    ``transaction.data_unavailable`` (retry), not a 422 telling the app the account is unknown."""
    seen = _seen(factory, plugins, "partner-a")

    def down(self: Any, ref: str, now: Any = None) -> Any:
        raise ConnectionError("database away")

    monkeypatch.setattr(ConsentStore, "live_scopes", down)
    with pytest.raises(ServiceUnavailable) as info:
        await service.submit(CUSTOMER, "k-1", _body("partner-a", seen[0]), client_id=APP_CLIENT_ID)
    assert info.value.code == "transaction.data_unavailable"
    assert (payer.calls, _journaled(db)) == ([], [])


async def test_a_type_naming_accounts_needs_accounts_read(
    settings: Settings, db: Database, kit: Any, payer: Payer, provider: DemoDataProvider
) -> None:
    """A plugin not granted accounts:read cannot run a type whose parameters name accounts (403)."""
    plugin = payer.plugin(kit, "dept", "department", scopes=["transactions:write", "search:contribute"])
    plugins = get_plugin_manager(settings, load_entry_points=False, extra_plugins=[plugin])
    factory = ContextFactory(settings=settings, db=db, provider=provider, plugins=plugins)
    dispatcher = Dispatcher(settings)
    try:
        service = TransactionService(
            settings=settings, db=db, plugins=plugins, dispatcher=dispatcher, contexts=factory,
            provider=provider,
        )
        assert service.types_for(CUSTOMER).items == []  # not listed: submitting it would be refused
        with pytest.raises(Forbidden) as info:
            await service.submit(CUSTOMER, "k-1", _body("dept", BANK_IDS[0]), client_id=APP_CLIENT_ID)
    finally:
        dispatcher.close()
    assert info.value.code == "transaction.plugin_scope_missing"


async def test_reconciliation_asks_the_partner_with_its_own_account_id(
    service: TransactionService, factory: ContextFactory, plugins: PluginSet, payer: Payer,
    release: threading.Event, db: Database,
) -> None:
    """A partner's transaction left unknown is asked about again from the journal (the bank's id) with
    the partner's own id, as first sent."""
    seen = _seen(factory, plugins, "partner-a")
    payer.hang = True
    outcome = await service.submit(CUSTOMER, "k-1", _body("partner-a", seen[0]), client_id=APP_CLIENT_ID)
    assert outcome.status_code == 202
    payer.hang = False
    release.set()
    [(_tx, status)] = await service.resolve_unknown()
    assert status == "succeeded"
    assert [request.params.from_account for _pid, request in payer.calls] == [seen[0], seen[0]]
    assert _journaled(db)[0]["from"] == BANK_IDS[0]
