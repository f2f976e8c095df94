"""The transaction pipeline, step by step, through ``TransactionService`` with the real plugin set,
dispatcher and contexts (no HTTP): each refusal, idempotency, suitability, limits and plugin failures."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import msgspec
import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.data.models import TransactionRow
from fulcrum_core.data.types import utcnow
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from fulcrum_core.oauth.server import APP_CLIENT_ID
from fulcrum_core.plugins import PluginPolicy, get_plugin_manager
from fulcrum_core.settings import Deadlines, Settings
from fulcrum_core.transactions.checks import PluginBusyError
from fulcrum_core.transactions.models import TransactionProblem, TransactionView
from fulcrum_core.transactions.service import PluginFaultError, TransactionService
from fulcrum_sdk.data import CustomerRecord, Profile, RiskProfile, StaticDataProvider
from fulcrum_sdk.errors import DataUnavailable, OutcomeUnknown, TransactionRefused
from fulcrum_sdk.idempotency import run_once
from fulcrum_sdk.models import LocalizedText, TransactionRequest, TransactionResult, TransactionType
from fulcrum_sdk.testing import PERSONAS
from sqlalchemy import func, select

pytestmark = pytest.mark.anyio

APP = APP_CLIENT_ID  # the mobile app's client, unless a test says otherwise
C3 = PERSONAS["young_professional"].id  # tolerance C3, assessment valid
C1_EXPIRED = PERSONAS["retiree"].id  # tolerance C1, assessment expired 2025-12-31
NO_RISK = "c-no-assessment"


def plugin_key(key: str, client_id: str = APP) -> str:
    """The idempotency key a plugin is handed for ``key`` sent by ``client_id``: unique among the
    customer's transactions whichever client sent it, the same on every call about the transaction."""
    return hashlib.sha256(f"{client_id}\x00{key}".encode()).hexdigest()

RISK = {"SAFE": "R1", "MID": "R3", "HOT": "R5", "STEP": "R1"}
EXPLODING: dict[str, BaseException] = {}
"""Products whose params ``__post_init__`` raises this (set by a test, after its rows are journaled)."""
HANGING: dict[str, threading.Event] = {}
"""Products whose params ``__post_init__`` blocks until this event is set (set by a test, like EXPLODING)."""


class BuyParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Parameters of the test type ``shop.buy``."""

    product: str
    amount_fen: Annotated[int, msgspec.Meta(gt=0)]
    mode: str = "ok"

    def __post_init__(self) -> None:
        if self.product in HANGING:
            HANGING[self.product].wait(30)
        if self.product in EXPLODING:
            raise EXPLODING[self.product]
        if self.product == "CLOSED":
            raise TransactionRefused("shop.closed", LocalizedText(zh_CN="暂停申购", en="Closed"),
                                     field="product")
        if self.product == "BUG":
            raise KeyError("a bug in the plugin")
        if self.product not in RISK:
            raise ValueError(f"unknown product {self.product!r}")
        if self.product == "STEP" and self.amount_fen % 100:
            raise ValueError("amount_fen: buy in whole yuan (multiples of 100 fen)")


@dataclass
class Shop:
    """A test plugin owning ``shop.buy``; ``mode`` picks how ``execute_transaction`` behaves."""

    release: threading.Event
    calls: list[TransactionRequest] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    risk_of: Callable[[Any], Any] = lambda p: RISK[p.product]
    override: str | None = None  # a mode for every call from now on, whatever the params say
    product_risks: dict[str, Any] = field(default_factory=lambda: dict(RISK))  # as its manifest declares

    def register(self, register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(
            key="shop.buy", name=LocalizedText(zh_CN="购买", en="Buy"), params=BuyParams,
            product_field="product", product_risks=self.product_risks,
            risk_of=lambda params: self.risk_of(params),
            amount_field="amount_fen",
        ))
        register(TransactionType(
            key="shop.note", name=LocalizedText(zh_CN="备注", en="Note"), params=NoteParams,
            risk_level="R1", amount_field=None,
        ))

    def execute(self, ctx: Any, request: TransactionRequest) -> Any:
        self.calls.append(request)
        self.entered.set()
        mode = self.override or getattr(request.params, "mode", "ok")
        if mode == "refuse":
            raise TransactionRefused("shop.sold_out", LocalizedText(zh_CN="已售罄", en="Sold out"),
                                     field="product")
        if mode == "fail":
            return TransactionResult(status="failed", code="shop.declined",
                                     message=LocalizedText(zh_CN="被拒绝", en="Declined"))
        if mode == "boom":
            raise RuntimeError("database of the partner is down")
        if mode == "unsure":
            raise OutcomeUnknown("the partner took the order but its answer timed out")
        if mode == "no_data":  # a read the host could not serve, after whatever the plugin did first
            raise DataUnavailable("plugin storage")
        if mode == "busy":
            raise TransactionRefused("shop.request_in_progress", LocalizedText(zh_CN="处理中"))
        if mode == "stocked":  # takes one of the customer's allowance in storage, once per key
            def take() -> TransactionResult:
                ctx.storage.add("allowance", 1, upper=5)
                return TransactionResult(status="succeeded", reference=f"ref-{request.id[:8]}")

            return run_once(ctx, request.idempotency_key, take, code_prefix="shop")
        if mode == "hang":
            self.release.wait(30)
        if mode == "garbage":
            return {"status": "succeeded"}
        if mode == "bad_refusal":  # a refusal whose message breaks LocalizedText's limits (400 characters)
            raise TransactionRefused("shop.sold_out", LocalizedText(zh_CN="已售罄。" * 150))
        if mode == "spoofed_code":  # a code that would read otherwise in the journal, a receipt or a log
            return TransactionResult(status="failed", code="shop.\u202edeclined",
                                     message=LocalizedText(zh_CN="被拒绝", en="Declined"))
        if mode == "spoofed_refusal":
            raise TransactionRefused("shop.sold_out\n", LocalizedText(zh_CN="已售罄", en="Sold out"))
        if mode == "unencodable":  # a lone surrogate, as json.loads lets through from a backend
            return TransactionResult(status="succeeded", reference="ref-\ud800", data={"name": "\udcff"})
        return TransactionResult(status="succeeded", reference=f"ref-{request.id[:8]}", data={"units": 1})


class NoteParams(msgspec.Struct, frozen=True):
    """Parameters of ``shop.note``: no amount, no product risk."""

    text: str


@pytest.fixture
def shop(release: threading.Event) -> Shop:
    """The test plugin's behaviour and call log."""
    return Shop(release=release)


@pytest.fixture
def provider() -> StaticDataProvider:
    """The SDK personas plus a customer who never took the risk questionnaire."""
    records = {r.id: r for r in PERSONAS.values()}
    records[NO_RISK] = CustomerRecord(id=NO_RISK, name="No Assessment", persona="young_professional",
                                      profile=Profile(segment="mass", branch="021"))
    return StaticDataProvider(records)


@pytest.fixture
def make_service(
    db: Database, settings: Settings, kit: Any, shop: Shop, provider: StaticDataProvider
) -> Iterator[Callable[..., TransactionService]]:
    """Build a service around the shop plugin on the parametrized database; dispatchers closed after."""
    dispatchers: list[Dispatcher] = []

    def build(*, owner: str = "shop", kind: str = "department", **overrides: Any) -> TransactionService:
        conf = msgspec.structs.replace(settings, **overrides) if overrides else settings
        def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
            shop.register(register)

        def execute_transaction(ctx: Any, request: TransactionRequest) -> Any:
            return shop.execute(ctx, request)

        plugin = kit.plugin(
            owner,
            kind=kind,
            transaction_types=["shop.buy", "shop.note"],
            register_transaction_types=register_transaction_types,
            execute_transaction=execute_transaction,
        )
        plugins = get_plugin_manager(conf, extra_plugins=[plugin], load_entry_points=False)
        assert set(plugins.transaction_types) == {"shop.buy", "shop.note"}, plugins.quarantined
        dispatcher = Dispatcher(conf)
        dispatchers.append(dispatcher)
        contexts = ContextFactory(settings=conf, db=db, provider=provider, plugins=plugins)
        return TransactionService(settings=conf, db=db, plugins=plugins, dispatcher=dispatcher,
                                  contexts=contexts, provider=provider)

    yield build
    for d in dispatchers:
        d.close()


@pytest.fixture
def service(make_service: Callable[..., TransactionService]) -> TransactionService:
    """A service with default settings."""
    return make_service()


def body(product: str = "MID", amount: int = 10_000, mode: str = "ok", **extra: Any) -> bytes:
    """A request body for ``shop.buy``."""
    return msgspec.json.encode({"type": "shop.buy", "params": {"product": product, "amount_fen": amount,
                                                                "mode": mode, **extra}})


def rows(db: Database) -> list[TransactionRow]:
    """Every journal row."""
    with db.read_session() as session:
        return list(session.scalars(select(TransactionRow)))


# --- success and replay ------------------------------------------------------------------------------


async def test_success_is_journaled_and_answered_201(
    service: TransactionService, shop: Shop, db: Database
) -> None:
    """A valid request runs the plugin once, answers 201 and leaves a ``succeeded`` row."""
    outcome = await service.submit(C3, "k-1", body(), client_id=APP)
    assert outcome.status_code == 201
    assert not outcome.replayed
    assert isinstance(outcome.body, TransactionView)
    assert outcome.body.status == "succeeded"
    assert outcome.body.amount_fen == 10_000
    assert outcome.body.risk_level == "R3"
    assert outcome.body.result is not None
    assert outcome.body.result.reference
    [request] = shop.calls
    assert isinstance(request.params, BuyParams)
    assert request.idempotency_key == plugin_key("k-1")
    assert (request.amount_fen, request.risk_level) == (10_000, "R3")
    [row] = rows(db)
    assert (row.status, row.customer_ref, row.plugin_id) == ("succeeded", C3, "shop")
    assert row.response_status == 201
    assert row.params == {"product": "MID", "amount_fen": 10_000, "mode": "ok"}


async def test_same_key_same_body_replays_the_stored_response(
    service: TransactionService, shop: Shop
) -> None:
    """A retry gets the same status and body, marked as a replay, without calling the plugin again."""
    first = await service.submit(C3, "k-1", body(), client_id=APP)
    again = await service.submit(C3, "k-1", body(), client_id=APP)
    assert again.replayed
    assert again.status_code == first.status_code
    assert msgspec.json.encode(again.body) == msgspec.json.encode(first.body)
    assert len(shop.calls) == 1


async def test_replay_ignores_key_order_and_whitespace(service: TransactionService, shop: Shop) -> None:
    """The request hash is over the canonical body: the same JSON written differently is the same request."""
    compact = b'{"type":"shop.buy","params":{"product":"MID","amount_fen":5,"mode":"ok"}}'
    await service.submit(C3, "k-1", compact, client_id=APP)
    again = await service.submit(
        C3, "k-1", b'{ "params": {"mode": "ok", "amount_fen": 5, "product": "MID"},\n "type": "shop.buy" }',
        client_id=APP,
    )
    assert again.replayed
    assert len(shop.calls) == 1


async def test_same_key_different_body_is_422(service: TransactionService, shop: Shop) -> None:
    """Reusing a key for another request is refused, naming the header."""
    await service.submit(C3, "k-1", body(amount=100), client_id=APP)
    with pytest.raises(Unprocessable) as info:
        await service.submit(C3, "k-1", body(amount=200), client_id=APP)
    assert info.value.code == "idempotency.mismatch"
    assert info.value.field == "Idempotency-Key"
    assert len(shop.calls) == 1


async def test_keys_belong_to_one_customer(service: TransactionService, shop: Shop) -> None:
    """Two customers may use the same key: each gets their own transaction."""
    a = await service.submit(C3, "same", body(product="SAFE"), client_id=APP)
    b = await service.submit(PERSONAS["affluent"].id, "same", body(product="SAFE"), client_id=APP)
    assert a.transaction_id != b.transaction_id
    assert len(shop.calls) == 2


PARTNER = "plugin-shop"
"""The shop plugin's own OAuth client (a partner's backend acting for the customer)."""


async def test_keys_belong_to_one_client_of_the_customer(
    service: TransactionService, shop: Shop, db: Database
) -> None:
    """The app and the shop's backend, acting for one customer, both send ``k-1`` (with different
    bodies): two transactions, two plugin calls under two plugin keys, no 422; each client's retry
    replays its own transaction."""
    app = await service.submit(C3, "k-1", body(amount=100), client_id=APP)
    partner = await service.submit(C3, "k-1", body(amount=200), client_id=PARTNER)
    assert (app.status_code, app.replayed, partner.status_code, partner.replayed) == (201, False, 201, False)
    assert app.transaction_id != partner.transaction_id
    assert [(r.id, r.idempotency_key) for r in shop.calls] == [
        (app.transaction_id, plugin_key("k-1", APP)), (partner.transaction_id, plugin_key("k-1", PARTNER))
    ]
    assert {(r.id, r.client_id, r.idempotency_key) for r in rows(db)} == {
        (app.transaction_id, APP, "k-1"), (partner.transaction_id, PARTNER, "k-1")
    }
    app_again = await service.submit(C3, "k-1", body(amount=100), client_id=APP)
    partner_again = await service.submit(C3, "k-1", body(amount=200), client_id=PARTNER)
    assert (app_again.replayed, app_again.transaction_id) == (True, app.transaction_id)
    assert (partner_again.replayed, partner_again.transaction_id) == (True, partner.transaction_id)
    assert msgspec.json.encode(partner_again.body) == msgspec.json.encode(partner.body)
    with pytest.raises(Unprocessable) as info:  # each client's key still names one request of its own
        await service.submit(C3, "k-1", body(amount=200), client_id=APP)
    assert (info.value.code, info.value.extra.get("transaction_id")) == (
        "idempotency.mismatch", app.transaction_id
    )
    assert len(shop.calls) == 2


async def test_a_plugin_client_submits_only_its_plugins_types(
    service: TransactionService, shop: Shop
) -> None:
    """The token's client decides which plugin acts: another plugin's client is refused (403 naming
    ``type``) before anything is journaled, whatever key it sends."""
    with pytest.raises(Forbidden) as info:
        await service.submit(C3, "k-1", body(), client_id="plugin-other")
    assert (info.value.code, info.value.field) == ("transaction.not_owner", "type")
    assert (await service.submit(C3, "k-1", body(), client_id=PARTNER)).status_code == 201
    assert len(shop.calls) == 1


async def test_a_request_naming_no_client_is_refused_before_anything_is_journaled(
    service: TransactionService, shop: Shop, db: Database
) -> None:
    """The empty client id marks rows from before clients were recorded; a request under it would
    reach every client's old rows, so it is a 403, not a transaction."""
    with pytest.raises(Forbidden) as info:
        await service.submit(C3, "k-1", body(), client_id="")
    assert info.value.code == "transaction.client_missing"
    assert (rows(db), shop.calls) == ([], [])


async def test_another_clients_transaction_in_flight_is_no_409(
    make_service: Callable[..., TransactionService], shop: Shop, release: threading.Event
) -> None:
    """While the app's ``k-1`` still waits on the plugin, the shop's backend sending ``k-1`` is not
    told to wait: its own transaction runs."""
    service = make_service()
    first = asyncio.ensure_future(service.submit(C3, "k-1", body(mode="hang"), client_id=APP))
    assert await asyncio.to_thread(shop.entered.wait, 30)
    with pytest.raises(Conflict):  # the app's own duplicate waits, as before
        await service.submit(C3, "k-1", body(mode="hang"), client_id=APP)
    shop.entered.clear()
    second = asyncio.ensure_future(service.submit(C3, "k-1", body(mode="hang"), client_id=PARTNER))
    assert await asyncio.to_thread(shop.entered.wait, 30)  # in the plugin too, beside the app's
    release.set()
    app, other = await first, await second
    assert (app.status_code, other.status_code, other.replayed) == (201, 201, False)
    assert other.transaction_id != app.transaction_id
    assert len(shop.calls) == 2


async def test_a_never_asked_transaction_is_run_again_only_by_its_own_clients_retry(
    service: TransactionService, shop: Shop, db: Database
) -> None:
    """The app's ``k-1`` is refused unasked (503, retryable). The shop's backend sending ``k-1`` gets
    a transaction of its own, not the app's rerun; the app's retry then runs the app's transaction
    (same id) as its next attempt."""
    undo = _refuse_without_calling(service, "breaker_open")
    refused = await service.submit(C3, "k-1", body(), client_id=APP)
    assert refused.status_code == 503
    undo()
    partner = await service.submit(C3, "k-1", body(), client_id=PARTNER)
    assert (partner.status_code, partner.replayed) == (201, False)
    assert partner.transaction_id != refused.transaction_id
    retried = await service.submit(C3, "k-1", body(), client_id=APP)
    assert (retried.status_code, retried.replayed) == (201, False)
    assert retried.transaction_id == refused.transaction_id
    by_id = {r.id: r for r in rows(db)}
    assert (by_id[refused.transaction_id].attempts, by_id[partner.transaction_id].attempts) == (2, 1)
    assert [r.id for r in shop.calls] == [partner.transaction_id, refused.transaction_id]


def _as_if_journaled_before_clients_were_recorded(db: Database) -> None:
    """Give every row the placeholder client, as revision ``20261130_02_idempotency_client`` gives
    the rows journaled before it."""
    from fulcrum_core.data.models.transaction import UNRECORDED_CLIENT
    from sqlalchemy import update

    with db.session() as session:
        session.execute(update(TransactionRow).values(client_id=UNRECORDED_CLIENT))


async def test_a_row_from_before_clients_were_recorded_keeps_the_customers_scope(
    service: TransactionService, shop: Shop, db: Database
) -> None:
    """Nobody knows which client sent an old row: any client of its customer sending its key replays
    it (a retry across the upgrade must not run it twice), and no second row is journaled."""
    first = await service.submit(C3, "k-old", body(), client_id=APP)
    _as_if_journaled_before_clients_were_recorded(db)
    for client in (APP, PARTNER):
        again = await service.submit(C3, "k-old", body(), client_id=client)
        assert (again.status_code, again.replayed, again.transaction_id) == (201, True, first.transaction_id)
    assert len(rows(db)) == 1
    assert len(shop.calls) == 1


async def test_an_old_row_found_by_another_plugins_client_is_refused_without_its_id(
    service: TransactionService, shop: Shop, db: Database
) -> None:
    """Another plugin's client sending an old row's key with its own body meets the customer-wide key
    (422), but is not told the id of a transaction it cannot read (GET would answer it 404); the app's
    client, which reads all of the customer's transactions, is told it."""
    first = await service.submit(C3, "k-old", body(), client_id=APP)
    _as_if_journaled_before_clients_were_recorded(db)
    other = msgspec.json.encode({"type": "other.pay", "params": {}})
    with pytest.raises(Unprocessable) as info:
        await service.submit(C3, "k-old", other, client_id="plugin-other")
    assert info.value.code == "idempotency.mismatch"
    assert "transaction_id" not in info.value.extra
    with pytest.raises(NotFound):
        service.get(C3, first.transaction_id, client_id="plugin-other")
    with pytest.raises(Unprocessable) as info:
        await service.submit(C3, "k-old", other, client_id=APP)
    assert info.value.extra["transaction_id"] == first.transaction_id
    with pytest.raises(Unprocessable) as info:  # the owning plugin's client reads it, so is told
        await service.submit(C3, "k-old", body(amount=20_000), client_id=PARTNER)
    assert info.value.extra["transaction_id"] == first.transaction_id
    assert len(rows(db)) == 1


async def test_an_old_row_is_not_replayed_to_a_client_that_cannot_have_sent_it(
    make_service: Callable[..., TransactionService], service: TransactionService, db: Database, shop: Shop
) -> None:
    """The type moved to another plugin since an old row was journaled: that plugin's client sending the
    same body under the key meets the customer-wide key (422 naming Idempotency-Key, no id), is neither
    replayed the first plugin's response nor gets a second transaction; the app's client still replays."""
    first = await service.submit(C3, "k-old", body(), client_id=APP)
    _as_if_journaled_before_clients_were_recorded(db)
    moved = make_service(owner="other")
    with pytest.raises(Unprocessable) as info:
        await moved.submit(C3, "k-old", body(), client_id="plugin-other")
    assert (info.value.code, info.value.field) == ("idempotency.mismatch", "Idempotency-Key")
    assert "transaction_id" not in info.value.extra
    again = await moved.submit(C3, "k-old", body(), client_id=APP)
    assert (again.status_code, again.replayed, again.transaction_id) == (201, True, first.transaction_id)
    assert len(rows(db)) == 1
    assert len(shop.calls) == 1


async def test_reconciliation_asks_about_an_old_row_under_its_bare_key(
    make_service: Callable[..., TransactionService], db: Database, release: threading.Event, shop: Shop
) -> None:
    """A row journaled before clients were recorded was sent to its plugin under the client's bare
    key, so it is asked about again under that key (the plugin's ``run_once`` finds its result)."""
    service = make_service(deadlines=Deadlines(execute_transaction=50))
    assert (await service.submit(C3, "k-old", body(mode="hang"), client_id=APP)).status_code == 202
    _as_if_journaled_before_clients_were_recorded(db)
    release.set()
    [(tx_id, status)] = await service.resolve_unknown()
    assert status == "succeeded"
    assert (shop.calls[-1].id, shop.calls[-1].idempotency_key) == (tx_id, "k-old")


async def test_in_flight_duplicate_is_409(make_service: Callable[..., TransactionService], shop: Shop,
                                          release: threading.Event) -> None:
    """While the first request still waits on the plugin, a duplicate gets 409 and no second call."""
    service = make_service()
    first = asyncio.ensure_future(service.submit(C3, "k-1", body(mode="hang"), client_id=APP))
    assert await asyncio.to_thread(shop.entered.wait, 30)  # the first request is inside the plugin now
    with pytest.raises(Conflict) as info:
        await service.submit(C3, "k-1", body(mode="hang"), client_id=APP)
    assert info.value.code == "idempotency.in_flight"
    release.set()
    outcome = await first
    assert outcome.status_code == 201
    assert len(shop.calls) == 1


async def test_a_request_cancelled_while_its_row_is_written_still_executes_it(
    service: TransactionService, shop: Shop, db: Database
) -> None:
    """The caller goes away while the pending row is being committed: the row is in, so the plugin is
    called and the outcome journaled as for any other request, never a row left pending that no one
    will execute (409 on every retry until reconciliation calls it unknown and carries it out later)."""
    writing, go_on = threading.Event(), threading.Event()
    insert = service.journal.insert_pending

    def slow_insert(row: TransactionRow) -> bool:
        writing.set()
        go_on.wait(30)
        return insert(row)

    service.journal.insert_pending = slow_insert  # type: ignore[method-assign]
    request = asyncio.ensure_future(service.submit(C3, "k-1", body(), client_id=APP))
    assert await asyncio.to_thread(writing.wait, 30)
    request.cancel()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await request
    for _ in range(200):
        if [r.status for r in rows(db)] not in ([], ["pending"]):
            break
        await asyncio.sleep(0.05)
    [row] = rows(db)
    assert (row.status, row.response_status, len(shop.calls)) == ("succeeded", 201, 1)


# --- refusals before the journal ----------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, ""])
async def test_missing_key_is_400_naming_the_header(
    service: TransactionService, db: Database, key: str | None
) -> None:
    """No Idempotency-Key: 400 naming it, nothing journaled, nothing executed."""
    with pytest.raises(BadRequest) as info:
        await service.submit(C3, key, body(), client_id=APP)
    assert info.value.field == "Idempotency-Key"
    assert rows(db) == []


async def test_malformed_key_is_400(service: TransactionService) -> None:
    """A key with spaces or over 255 characters is refused."""
    for key in ("has space", "x" * 256, "中文"):
        with pytest.raises(BadRequest) as info:
            await service.submit(C3, key, body(), client_id=APP)
        assert info.value.field == "Idempotency-Key"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b'{"params": {}}', "type"),
        (b'{"type": 7}', "type"),
        (b'{"type": ""}', "type"),
        (b'{"type": "shop.buy", "params": []}', "params"),
        (b'{"type": "shop.buy", "extra": 1}', "extra"),
    ],
)
async def test_bad_body_is_400_naming_the_field(
    service: TransactionService, db: Database, raw: bytes, field: str
) -> None:
    """A body that is not ``{"type": str, "params": {...}}`` is a 400 naming the offending field."""
    with pytest.raises(BadRequest) as info:
        await service.submit(C3, "k-1", raw, client_id=APP)
    assert info.value.field == field
    assert rows(db) == []


async def test_unknown_type_is_422(service: TransactionService) -> None:
    """A type no plugin registered is refused, naming ``type``."""
    with pytest.raises(Unprocessable) as info:
        await service.submit(C3, "k-1", b'{"type": "shop.nothing", "params": {}}', client_id=APP)
    assert (info.value.code, info.value.field) == ("transaction.unknown_type", "type")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"product": "MID"}, "params.amount_fen"),  # missing
        ({"product": "MID", "amount_fen": "100"}, "params.amount_fen"),
        ({"product": "MID", "amount_fen": 0}, "params.amount_fen"),
        ({"product": "MID", "amount_fen": 1.5}, "params.amount_fen"),
        ({"product": "NOPE", "amount_fen": 100}, "params"),  # __post_init__ refuses it
        ({"product": "STEP", "amount_fen": 150}, "params.amount_fen"),  # ... naming the field
        ({"product": "MID", "amount_fen": 100, "colour": "red"}, "params.colour"),
    ],
)
async def test_params_failing_the_schema_are_422_naming_the_field(
    service: TransactionService, shop: Shop, db: Database, params: dict[str, Any], field: str
) -> None:
    """Parameters are decoded with the type's Struct; a failure names ``params.<field>``."""
    raw = msgspec.json.encode({"type": "shop.buy", "params": params})
    with pytest.raises(Unprocessable) as info:
        await service.submit(C3, "k-1", raw, client_id=APP)
    assert info.value.code == "transaction.invalid_params"
    assert info.value.field == field
    assert shop.calls == []
    assert rows(db) == []


async def test_params_refused_by_the_plugin_keep_its_code(service: TransactionService, shop: Shop) -> None:
    """A ``TransactionRefused`` from the params Struct is a 422 with the plugin's code and field."""
    with pytest.raises(Unprocessable) as info:
        await service.submit(C3, "k-1", body(product="CLOSED"), client_id=APP)
    assert (info.value.code, info.value.field) == ("shop.closed", "params.product")
    assert info.value.extra["message"] == {"zh-CN": "暂停申购", "en": "Closed"}
    assert shop.calls == []


async def test_params_struct_crash_is_a_plugin_fault_not_a_client_error(
    service: TransactionService, db: Database
) -> None:
    """Any other exception in the params Struct is the plugin's fault: 502 naming it, nothing journaled."""
    with pytest.raises(PluginFaultError) as info:
        await service.submit(C3, "k-1", body(product="BUG"), client_id=APP)
    assert info.value.status == 502
    assert "'shop'" in info.value.detail
    assert "a bug in the plugin" not in info.value.detail
    assert rows(db) == []


async def test_inactive_plugin_is_403(service: TransactionService, shop: Shop) -> None:
    """A type whose plugin the registry switched off cannot be submitted."""
    service._plugins.set_policy({"shop": PluginPolicy(active=False, granted_scopes=frozenset())})  # type: ignore[attr-defined]
    with pytest.raises(Forbidden) as info:
        await service.submit(C3, "k-1", body(), client_id=APP)
    assert info.value.code == "transaction.plugin_inactive"
    assert shop.calls == []


async def test_plugin_without_transactions_write_is_403(service: TransactionService, shop: Shop) -> None:
    """A plugin whose grant lost ``transactions:write`` cannot execute, and the scope is named."""
    service._plugins.set_policy(  # type: ignore[attr-defined]
        {"shop": PluginPolicy(active=True, granted_scopes=frozenset({"profile:basic"}))}
    )
    with pytest.raises(Forbidden) as info:
        await service.submit(C3, "k-1", body(), client_id=APP)
    assert info.value.code == "transaction.plugin_scope_missing"
    assert info.value.extra["missing_scopes"] == ["transactions:write"]
    assert shop.calls == []


async def test_unknown_customer_is_403(service: TransactionService, db: Database) -> None:
    """A token subject the bank has no profile for cannot transact."""
    with pytest.raises(Forbidden):
        await service.submit("nobody", "k-1", body(product="SAFE"), client_id=APP)
    assert rows(db) == []


# --- suitability and limits ----------------------------------------------------------------------------


async def test_product_above_tolerance_is_refused(
    service: TransactionService, shop: Shop, db: Database
) -> None:
    """A C3 customer cannot buy an R5 product: 422 ``suitability.risk_too_high`` before any plugin call."""
    with pytest.raises(Unprocessable) as info:
        await service.submit(C3, "k-1", body(product="HOT"), client_id=APP)
    assert info.value.code == "suitability.risk_too_high"
    assert info.value.extra["message"]["zh-CN"]
    assert info.value.extra["message"]["en"]
    assert shop.calls == []
    assert rows(db) == []


async def test_product_at_tolerance_is_allowed(service: TransactionService) -> None:
    """C3 may buy R3."""
    assert (await service.submit(C3, "k-1", body(product="MID"), client_id=APP)).status_code == 201


async def test_expired_assessment_blocks_anything_above_r1(service: TransactionService, shop: Shop) -> None:
    """An expired questionnaire refuses R2+ products but still allows R1."""
    with pytest.raises(Unprocessable) as info:
        await service.submit(C1_EXPIRED, "k-1", body(product="MID"), client_id=APP)
    assert info.value.code == "suitability.assessment_expired"
    assert (await service.submit(C1_EXPIRED, "k-2", body(product="SAFE"), client_id=APP)).status_code == 201


async def test_missing_assessment_blocks_anything_above_r1(service: TransactionService) -> None:
    """No questionnaire at all: R3 is refused, R1 is allowed."""
    with pytest.raises(Unprocessable) as info:
        await service.submit(NO_RISK, "k-1", body(product="MID"), client_id=APP)
    assert info.value.code == "suitability.assessment_missing"
    assert (await service.submit(NO_RISK, "k-2", body(product="SAFE"), client_id=APP)).status_code == 201


async def test_an_r1_type_moving_no_money_needs_no_questionnaire(service: TransactionService) -> None:
    """A type stating R1 and no amount (a note) is rated R1: no questionnaire needed, no limit to apply."""
    note = b'{"type": "shop.note", "params": {"text": "hi"}}'
    outcome = await service.submit(NO_RISK, "k-1", note, client_id=APP)
    assert outcome.status_code == 201
    assert isinstance(outcome.body, TransactionView)
    assert (outcome.body.amount_fen, outcome.body.risk_level) == (None, "R1")


async def test_amount_above_the_platform_limit_is_refused(make_service: Callable[..., TransactionService],
                                                          shop: Shop) -> None:
    """``amount_fen`` above ``max_transaction_fen`` is 422 ``limits.max_amount`` naming the field."""
    service = make_service(max_transaction_fen=1_000)
    with pytest.raises(Unprocessable) as info:
        await service.submit(C3, "k-1", body(amount=1_001), client_id=APP)
    assert (info.value.code, info.value.field) == ("limits.max_amount", "params.amount_fen")
    assert (await service.submit(C3, "k-2", body(amount=1_000), client_id=APP)).status_code == 201
    assert len(shop.calls) == 1


async def test_a_product_without_a_declared_level_is_not_sold(
    make_service: Callable[..., TransactionService], shop: Shop, db: Database
) -> None:
    """A product the type's approved declaration gives no level (``MID`` left out of ``product_risks``)
    is refused with 422 ``suitability.product_unrated`` naming ``params.product``, before ``risk_of`` or
    the plugin runs and before anything is journaled; a declared product still sells. The levels are
    the ones checked at startup: the plugin adding ``MID`` to its own dict afterwards changes nothing."""
    shop.product_risks = {k: v for k, v in RISK.items() if k != "MID"}
    asked: list[Any] = []
    shop.risk_of = lambda p: asked.append(p) or RISK[p.product]
    service = make_service()
    shop.product_risks["MID"] = "R3"  # the very dict the type was registered with
    with pytest.raises(Unprocessable) as info:
        await service.submit(C3, "k-1", body(product="MID"), client_id=APP)
    assert (info.value.code, info.value.field) == ("suitability.product_unrated", "params.product")
    assert "product 'MID' has no declared risk level" in info.value.detail
    assert (asked, shop.calls, rows(db)) == ([], [], [])
    assert (await service.submit(C3, "k-2", body(product="SAFE"), client_id=APP)).status_code == 201


async def test_risk_of_refusal_and_crash(service: TransactionService, shop: Shop, db: Database) -> None:
    """``risk_of`` may refuse (422 with its code) or crash (502, plugin named); neither is journaled."""
    def refusing(_: Any) -> Any:
        raise TransactionRefused("shop.delisted", LocalizedText(zh_CN="已下架"), field="product")

    shop.risk_of = refusing
    with pytest.raises(Unprocessable) as refused:
        await service.submit(C3, "k-1", body(), client_id=APP)
    assert (refused.value.code, refused.value.field) == ("shop.delisted", "params.product")
    shop.risk_of = lambda _: 1 / 0
    with pytest.raises(PluginFaultError) as crashed:
        await service.submit(C3, "k-2", body(), client_id=APP)
    assert crashed.value.status == 502
    shop.risk_of = lambda _: "R9"
    with pytest.raises(PluginFaultError):
        await service.submit(C3, "k-3", body(), client_id=APP)
    assert rows(db) == []
    assert shop.calls == []


# --- execution outcomes --------------------------------------------------------------------------------


async def test_plugin_refusal_is_a_failed_422_with_its_code(
    service: TransactionService, db: Database
) -> None:
    """``TransactionRefused`` records ``failed`` and answers 422 problem details with the plugin's words."""
    outcome = await service.submit(C3, "k-1", body(mode="refuse"), client_id=APP)
    assert outcome.status_code == 422
    assert outcome.media_type == "application/problem+json"
    problem = outcome.body
    assert isinstance(problem, TransactionProblem)
    assert (problem.code, problem.field, problem.status) == ("shop.sold_out", "params.product", 422)
    assert problem.message == LocalizedText(zh_CN="已售罄", en="Sold out")
    assert problem.transaction.status == "failed"
    [row] = rows(db)
    assert row.status == "failed"
    assert row.result["code"] == "shop.sold_out"


async def test_failed_result_is_a_failed_422(service: TransactionService) -> None:
    """A ``failed`` TransactionResult is answered like a refusal, with the result's code."""
    outcome = await service.submit(C3, "k-1", body(mode="fail"), client_id=APP)
    assert outcome.status_code == 422
    assert isinstance(outcome.body, TransactionProblem)
    assert outcome.body.code == "shop.declined"


async def test_failed_outcomes_replay_too(service: TransactionService, shop: Shop) -> None:
    """A refused transaction's answer is stored: a retry gets the same 422, no second call."""
    first = await service.submit(C3, "k-1", body(mode="refuse"), client_id=APP)
    again = await service.submit(C3, "k-1", body(mode="refuse"), client_id=APP)
    assert again.replayed
    assert again.status_code == 422
    assert msgspec.json.encode(again.body) == msgspec.json.encode(first.body)
    assert len(shop.calls) == 1


async def test_plugin_crash_is_a_failed_502(service: TransactionService, db: Database) -> None:
    """A plugin that raises: ``failed``, 502 problem naming the plugin, nothing leaked from its error."""
    outcome = await service.submit(C3, "k-1", body(mode="boom"), client_id=APP)
    assert outcome.status_code == 502
    assert isinstance(outcome.body, TransactionProblem)
    assert outcome.body.code == "transaction.plugin_error"
    assert "shop" in outcome.body.detail
    assert "partner is down" not in msgspec.json.encode(outcome.body).decode()
    assert rows(db)[0].status == "failed"


async def test_a_plugin_unsure_of_its_outcome_is_unknown_202_not_failed(
    service: TransactionService, db: Database, shop: Shop
) -> None:
    """OutcomeUnknown (the action may have gone through): ``unknown``, 202 with the journaled view, row
    kept for reconciliation, never a ``failed`` the customer would act on."""
    outcome = await service.submit(C3, "k-1", body(mode="unsure"), client_id=APP)
    assert outcome.status_code == 202
    assert isinstance(outcome.body, TransactionView)
    assert outcome.body.status == "unknown"
    assert rows(db)[0].status == "unknown"
    again = await service.submit(C3, "k-1", body(mode="unsure"), client_id=APP)
    assert again.replayed
    assert again.status_code == 202
    assert len(shop.calls) == 1


async def test_a_plugin_storage_write_whose_commit_is_unacknowledged_is_unknown_not_failed(
    make_service: Callable[..., TransactionService], db: Database, shop: Shop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The plugin's storage write commits but its answer is lost (the connection went): the allowance
    is used up, so the customer is told ``unknown`` (202), never ``failed``; ``run_once`` keeps its
    claim, and reconciliation asking again leaves the row unknown rather than taking a second one."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import Connection

    service = make_service()
    commit = Connection._commit_impl  # under Connection.commit and Transaction.commit alike
    losing = threading.local()

    def commit_then_lose_the_answer(conn: Connection) -> None:
        commit(conn)
        if getattr(losing, "on", False):  # the plugin's own write, in its thread
            raise sa_exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Connection, "_commit_impl", commit_then_lose_the_answer)
    real_add = service._contexts.plugin_storage("shop", fresh=True).add  # type: ignore[attr-defined]

    def add(key: str, delta: int, **bounds: Any) -> int:
        losing.on = key == "allowance"
        try:
            return real_add(key, delta, **bounds)
        finally:
            losing.on = False

    monkeypatch.setattr(service._contexts.plugin_storage("shop", fresh=True), "add", add)  # type: ignore[attr-defined]
    outcome = await service.submit(C3, "k-1", body(mode="stocked"), client_id=APP)
    assert outcome.status_code == 202, outcome.body
    assert rows(db)[0].status == "unknown"
    monkeypatch.undo()
    storage = service._contexts.plugin_storage("shop", fresh=True)  # type: ignore[attr-defined]
    assert storage.counter("allowance") == 1
    assert await service.resolve_unknown() == [(rows(db)[0].id, "unknown")]
    assert storage.counter("allowance") == 1


@pytest.mark.parametrize("failures", [1, 99])
async def test_an_outcome_the_journal_cannot_take_at_once_is_retried_then_unknown(
    service: TransactionService, db: Database, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    """The plugin succeeded but recording it hits a database blip: one blip is retried and the
    success recorded (201); a database that stays away gets 202 unknown (never a success the journal
    does not hold), the row left pending for reconciliation."""
    from fulcrum_core.data.errors import DatabaseUnavailable
    from fulcrum_core.transactions.journal import Journal

    finish = Journal.finish
    left = [failures]

    def flaky(self: Journal, *args: Any, **kwargs: Any) -> bool:
        if left[0] > 0:
            left[0] -= 1
            raise DatabaseUnavailable("database away")
        return finish(self, *args, **kwargs)

    monkeypatch.setattr(Journal, "finish", flaky)
    outcome = await service.submit(C3, "k-1", body(), client_id=APP)
    [row] = rows(db)
    if failures == 1:
        assert (outcome.status_code, row.status) == (201, "succeeded")
    else:
        assert outcome.status_code == 202
        assert isinstance(outcome.body, TransactionView)
        assert outcome.body.status == "unknown"
        assert row.status == "pending"


@pytest.mark.parametrize("committed", [True, False])
async def test_a_journal_row_whose_insert_lost_its_acknowledgement_is_carried_out_once(
    service: TransactionService, db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch, committed: bool
) -> None:
    """The insert of the pending row hits a connection lost around its commit. Committed: the row is
    found and executed in this request (201), where it was a 503 that left it pending, unexecuted, and
    every retry a 409 until reconciliation marked it unknown and ran it there, long after. Not
    committed: still the 503 with nothing journaled, and a retry with the same key carries it out."""
    from fulcrum_core.data.errors import DatabaseUnavailable
    from fulcrum_core.transactions.journal import Journal

    insert = Journal.insert_pending

    def lost(self: Journal, row: TransactionRow) -> bool:
        if committed:
            insert(self, row)
        raise DatabaseUnavailable("connection lost before the commit was acknowledged")

    monkeypatch.setattr(Journal, "insert_pending", lost)
    if committed:
        outcome = await service.submit(C3, "k-1", body(), client_id=APP)
        assert outcome.status_code == 201
        [row] = rows(db)
        assert (row.id, row.status) == (outcome.transaction_id, "succeeded")
    else:
        with pytest.raises(DatabaseUnavailable):
            await service.submit(C3, "k-1", body(), client_id=APP)
        assert rows(db) == []
        monkeypatch.setattr(Journal, "insert_pending", insert)
        assert (await service.submit(C3, "k-1", body(), client_id=APP)).status_code == 201
    assert len(shop.calls) == 1

@pytest.mark.parametrize("committed", [True, False])
async def test_a_retry_whose_taking_of_the_row_lost_its_acknowledgement_runs_it_once(
    service: TransactionService, db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch, committed: bool
) -> None:
    """A retry of a transaction the plugin never saw takes its row back to pending, and the connection
    goes as that commits. Committed: this retry runs it (201), where it answered 503 and left the row
    pending, unrun, every later retry a 409. Not committed: still the 503, the row still retryable, and
    the next retry runs it."""
    from fulcrum_core.data.errors import DatabaseUnavailable
    from fulcrum_core.transactions.journal import Journal

    undo = _refuse_without_calling(service, "breaker_open")
    refused = await service.submit(C3, "k-1", body(), client_id=APP)
    undo()
    assert refused.status_code == 503
    reclaim = Journal.reclaim

    def lost(self: Journal, row: TransactionRow, **kwargs: Any) -> TransactionRow | None:
        if committed:
            reclaim(self, row, **kwargs)
        raise DatabaseUnavailable("connection lost before the commit was acknowledged")

    monkeypatch.setattr(Journal, "reclaim", lost)
    if committed:
        retried = await service.submit(C3, "k-1", body(), client_id=APP)
        assert (retried.status_code, retried.transaction_id) == (201, refused.transaction_id)
        [row] = rows(db)
        assert (row.status, row.attempts) == ("succeeded", 2)
    else:
        with pytest.raises(DatabaseUnavailable):
            await service.submit(C3, "k-1", body(), client_id=APP)
        assert [(r.status, r.retryable) for r in rows(db)] == [("failed", True)]
        monkeypatch.setattr(Journal, "reclaim", reclaim)
        assert (await service.submit(C3, "k-1", body(), client_id=APP)).status_code == 201
    assert len(shop.calls) == 1

async def test_reconciliation_asks_the_plugin_again_and_settles_unknown_rows(
    make_service: Callable[..., TransactionService], db: Database, release: threading.Event, shop: Shop
) -> None:
    """A transaction left unknown by a deadline is asked about again with the same request and key:
    the plugin's answer is journaled and replayed from then on; a plugin that says its first attempt
    still holds the key leaves the row unknown rather than failed."""
    service = make_service(deadlines=Deadlines(execute_transaction=50))
    assert (await service.submit(C3, "k-1", body(mode="hang"), client_id=APP)).status_code == 202
    release.set()  # the partner answers now
    [(tx_id, status)] = await service.resolve_unknown()
    assert status == "succeeded"
    [row] = rows(db)
    assert (row.id, row.status) == (tx_id, "succeeded")
    # The same request, under the same key.
    assert [(r.id, r.idempotency_key) for r in shop.calls] == [(tx_id, plugin_key("k-1"))] * 2
    replayed = await service.submit(C3, "k-1", body(mode="hang"), client_id=APP)
    assert (replayed.replayed, replayed.status_code) == (True, 201)


async def test_reconciliation_leaves_a_still_claimed_transaction_unknown(
    make_service: Callable[..., TransactionService], db: Database, shop: Shop
) -> None:
    """The plugin refuses the second ask as still in progress: the row stays unknown, not failed."""
    service = make_service()
    outcome = await service.submit(C3, "k-1", body(mode="unsure"), client_id=APP)
    assert outcome.status_code == 202
    shop.override = "busy"
    assert await service.resolve_unknown() == [(rows(db)[0].id, "unknown")]
    assert rows(db)[0].status == "unknown"


async def test_reconciliation_reaches_past_a_full_batch_of_rows_it_cannot_settle(
    make_service: Callable[..., TransactionService], db: Database, release: threading.Event
) -> None:
    """The oldest unknown rows stay unknown on every run (their plugin still cannot confirm): a newer
    one behind a whole batch of them is still asked about and settled, not starved for ever."""
    service = make_service(deadlines=Deadlines(execute_transaction=50))
    for key in ("k-1", "k-2"):
        assert (await service.submit(C3, key, body(mode="unsure"), client_id=APP)).status_code == 202
    assert (await service.submit(C3, "k-3", body(mode="hang"), client_id=APP)).status_code == 202
    release.set()
    settled = dict(await service.resolve_unknown(limit=2))
    by_key = {r.idempotency_key: r for r in rows(db)}
    assert {key: settled[row.id] for key, row in by_key.items()} == {
        "k-1": "unknown", "k-2": "unknown", "k-3": "succeeded"
    }
    assert by_key["k-3"].status == "succeeded"


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("boom", "execute_transaction: error: RuntimeError"),
        ("unsure", "cannot confirm its outcome"),
        ("garbage", "execute_transaction: invalid"),
        ("bad_refusal", "refused invalidly"),
    ],
)
async def test_a_partners_failed_transaction_is_logged_with_the_request_id_it_was_given(
    make_service: Callable[..., TransactionService],
    shop: Shop,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    says: str,
) -> None:
    """When a partner's ``execute_transaction`` raises (or cannot confirm, or answers invalidly), the
    warning names the request id the partner was given (in the text and as ``partner_request_id``), so
    its report can be matched to the line; an internal plugin's line has no such field."""
    from fulcrum_core.observability.logging import JsonFormatter

    shop.override = mode
    logged: dict[str, logging.LogRecord] = {}
    services: dict[str, TransactionService] = {}
    for owner, kind in (("partner-x", "partner"), ("shop", "department")):
        service = services[owner] = make_service(owner=owner, kind=kind)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="fulcrum.transactions"):
            outcome = await service.submit(C3, f"k-{owner}", body(), client_id=APP)
        assert outcome.status_code in (202, 502)
        [record] = [r for r in caplog.records if r.name == "fulcrum.transactions" and says in r.getMessage()]
        assert record.transaction_id == outcome.transaction_id  # type: ignore[attr-defined]
        assert (record.plugin, record.hook) == (owner, "execute_transaction")  # type: ignore[attr-defined]
        logged[owner] = record
        seen = shop.calls[-1]
        assert seen.id == outcome.transaction_id
    partner = logged["partner-x"]
    tx_id: str = partner.transaction_id  # type: ignore[attr-defined]
    contexts: Any = services["partner-x"]._contexts
    given = contexts.partner_request_id("partner-x", tx_id)  # the id the partner's ctx carried
    assert len(given) == 32
    assert given != tx_id
    assert partner.partner_request_id == given  # type: ignore[attr-defined]
    assert f"[partner request id {given}]" in partner.getMessage()
    assert json.loads(JsonFormatter().format(partner))["partner_request_id"] == given
    internal = logged["shop"]
    assert not hasattr(internal, "partner_request_id")
    assert "partner request id" not in internal.getMessage()
    assert "partner_request_id" not in json.loads(JsonFormatter().format(internal))


@pytest.fixture
def exploding() -> Iterator[dict[str, BaseException]]:
    """``EXPLODING``, emptied after the test."""
    yield EXPLODING
    EXPLODING.clear()


async def test_reconciliation_survives_params_that_raise_system_exit_when_decoded_again(
    service: TransactionService,
    db: Database,
    shop: Shop,
    exploding: dict[str, BaseException],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plugin's params ``__post_init__`` that raises ``SystemExit`` (or another BaseException) while
    reconciliation decodes a row again leaves that row unknown, logged; the run goes on to settle the
    next one. Before, the SystemExit ended the whole run."""
    first = await service.submit(C3, "k-1", body(product="MID", mode="unsure"), client_id=APP)
    second = await service.submit(C3, "k-2", body(product="SAFE", mode="unsure"), client_id=APP)
    assert (first.status_code, second.status_code) == (202, 202)
    shop.override = "ok"
    exploding["MID"] = SystemExit(3)
    with caplog.at_level("WARNING", logger="fulcrum.transactions"):
        settled = dict(await service.resolve_unknown())
    assert settled == {first.transaction_id: "unknown", second.transaction_id: "succeeded"}
    assert [r.id for r in shop.calls] == [first.transaction_id, second.transaction_id, second.transaction_id]
    statuses = {row.id: row.status for row in rows(db)}
    assert statuses == {first.transaction_id: "unknown", second.transaction_id: "succeeded"}
    [record] = [r for r in caplog.records if "cannot be asked about again" in r.getMessage()]
    assert first.transaction_id in record.getMessage()
    assert "SystemExit(3)" in record.getMessage()
    assert (record.plugin, record.transaction_id) == ("shop", first.transaction_id)  # type: ignore[attr-defined]


@pytest.fixture
def hanging() -> Iterator[dict[str, threading.Event]]:
    """``HANGING``, emptied after the test (its events set first, so no thread stays blocked)."""
    yield HANGING
    for event in HANGING.values():
        event.set()
    HANGING.clear()


async def test_reconciliation_cuts_off_params_that_hang_when_decoded_again(
    make_service: Callable[..., TransactionService],
    db: Database,
    shop: Shop,
    hanging: dict[str, threading.Event],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plugin's params ``__post_init__`` that hangs while reconciliation decodes a row again is run in
    a plugin thread under the transaction deadline: that row stays unknown, logged, and the run goes on
    to settle the next one. Before, it ran on the event loop with no deadline and blocked the run."""
    service = make_service(deadlines=msgspec.structs.replace(Settings().deadlines, execute_transaction=200))
    first = await service.submit(C3, "k-1", body(product="MID", mode="unsure"), client_id=APP)
    second = await service.submit(C3, "k-2", body(product="SAFE", mode="unsure"), client_id=APP)
    assert (first.status_code, second.status_code) == (202, 202)
    shop.override = "ok"
    stuck = hanging["MID"] = threading.Event()
    loop = asyncio.get_running_loop()
    ticks = 0

    async def ticking() -> None:  # counts while the loop is free: a blocked loop never runs it
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(ticking())
    started = loop.time()
    with caplog.at_level("WARNING", logger="fulcrum.transactions"):
        settled = dict(await asyncio.wait_for(service.resolve_unknown(), 10))
    took = loop.time() - started
    ticker.cancel()
    assert settled == {first.transaction_id: "unknown", second.transaction_id: "succeeded"}
    assert took < 5
    assert ticks >= 5  # the loop kept running while the params hung
    statuses = {row.id: row.status for row in rows(db)}
    assert statuses == {first.transaction_id: "unknown", second.transaction_id: "succeeded"}
    [record] = [r for r in caplog.records if "cannot be asked about again" in r.getMessage()]
    assert first.transaction_id in record.getMessage()
    assert "did not finish decoding its params within 200 ms" in record.getMessage()
    assert (record.plugin, record.transaction_id) == ("shop", first.transaction_id)  # type: ignore[attr-defined]
    stuck.set()  # let the abandoned thread end before the dispatcher shuts down


class _Unprintable(Exception):
    """A plugin's exception whose ``repr`` itself raises (a broken ``__repr__`` in plugin code)."""

    def __repr__(self) -> str:
        raise RuntimeError("repr is broken too")


async def test_reconciliation_survives_params_that_raise_an_exception_that_cannot_be_printed(
    service: TransactionService,
    db: Database,
    shop: Shop,
    exploding: dict[str, BaseException],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The log line about a row that cannot be decoded again never raises itself: an exception whose
    ``repr`` raises is named by its type, the row stays unknown and the run settles the next one.
    Before, the eager ``repr`` in the warning raised out of reconciliation."""
    first = await service.submit(C3, "k-1", body(product="MID", mode="unsure"), client_id=APP)
    second = await service.submit(C3, "k-2", body(product="SAFE", mode="unsure"), client_id=APP)
    shop.override = "ok"
    exploding["MID"] = _Unprintable()
    with caplog.at_level("WARNING", logger="fulcrum.transactions"):
        settled = dict(await service.resolve_unknown())
    assert settled == {first.transaction_id: "unknown", second.transaction_id: "succeeded"}
    [record] = [r for r in caplog.records if "cannot be asked about again" in r.getMessage()]
    assert "_Unprintable" in record.getMessage()


async def test_reconciliation_takes_a_keyboard_interrupt_from_params_for_the_rows_problem(
    service: TransactionService, db: Database, shop: Shop, exploding: dict[str, BaseException]
) -> None:
    """A row is decoded again in a plugin thread, which no signal reaches: a KeyboardInterrupt there is the
    plugin's params ``__post_init__`` raising it, not the operator's Ctrl-C. It ended the run; now that
    row stays unknown and the run settles the next one."""
    first = await service.submit(C3, "k-1", body(product="MID", mode="unsure"), client_id=APP)
    second = await service.submit(C3, "k-2", body(product="SAFE", mode="unsure"), client_id=APP)
    shop.override = "ok"
    exploding["MID"] = KeyboardInterrupt()
    settled = dict(await service.resolve_unknown())
    assert settled == {first.transaction_id: "unknown", second.transaction_id: "succeeded"}


@pytest.mark.parametrize("why", ["boom", "breaker_open"])
async def test_reconciliation_that_cannot_ask_the_plugin_leaves_the_row_unknown(
    service: TransactionService, db: Database, shop: Shop, why: str
) -> None:
    """The second ask fails without an answer (the plugin raises, or its breaker refuses the call):
    what the first attempt did is still not known, so the row stays unknown, never a failed "not
    carried out" the customer would act on (and pay twice)."""
    assert (await service.submit(C3, "k-1", body(mode="unsure"), client_id=APP)).status_code == 202
    if why == "boom":
        shop.override = "boom"
    else:
        service._dispatcher.resilience.get("shop", "execute_transaction").breaker.trip()  # type: ignore[attr-defined]
    not_asked: dict[str, str] = {}
    assert await service.resolve_unknown(not_asked=not_asked) == [(rows(db)[0].id, "unknown")]
    # A refused call never reached the plugin: said so (reconcile printed "asked again"); one that
    # raised was asked.
    if why == "breaker_open":
        assert list(not_asked) == [rows(db)[0].id]
        assert not_asked[rows(db)[0].id].startswith("its plugin's call was refused: ")
    else:
        assert not_asked == {}
    [row] = rows(db)
    assert (row.status, row.response_status) == ("unknown", 202)
    replayed = await service.submit(C3, "k-1", body(mode="unsure"), client_id=APP)
    assert (replayed.replayed, replayed.status_code) == (True, 202)


async def test_timeout_is_unknown_202(make_service: Callable[..., TransactionService], db: Database,
                                      release: threading.Event) -> None:
    """A plugin missing its deadline leaves the outcome ``unknown``: 202, row kept for reconciliation."""
    service = make_service(deadlines=Deadlines(execute_transaction=50))
    outcome = await service.submit(C3, "k-1", body(mode="hang"), client_id=APP)
    release.set()
    assert outcome.status_code == 202
    assert isinstance(outcome.body, TransactionView)
    assert outcome.body.status == "unknown"
    [row] = rows(db)
    assert row.status == "unknown"
    replayed = await service.submit(C3, "k-1", body(mode="hang"), client_id=APP)
    assert replayed.replayed
    assert replayed.status_code == 202


async def test_garbage_result_is_unknown(service: TransactionService, db: Database) -> None:
    """A plugin returning something other than a TransactionResult may have acted: ``unknown``."""
    outcome = await service.submit(C3, "k-1", body(mode="garbage"), client_id=APP)
    assert outcome.status_code == 202
    assert rows(db)[0].status == "unknown"


@pytest.mark.parametrize("mode", ["unencodable", "bad_refusal"])
async def test_a_result_that_cannot_be_written_as_json_is_unknown_not_a_500(
    service: TransactionService, db: Database, mode: str
) -> None:
    """A result whose text holds a lone surrogate passes the Struct's checks but cannot be sent or
    stored as JSON: the plugin may have acted, so it is ``unknown`` (202, journaled), never an
    unhandled error that leaves the row pending and the customer with a 500. So is a refusal whose
    message is not valid text (over 400 characters)."""
    outcome = await service.submit(C3, "k-1", body(mode=mode), client_id=APP)
    assert outcome.status_code == 202
    assert isinstance(outcome.body, TransactionView)
    assert outcome.body.status == "unknown"
    [row] = rows(db)
    assert (row.status, row.response_status) == ("unknown", 202)
    replayed = await service.submit(C3, "k-1", body(mode=mode), client_id=APP)
    assert (replayed.replayed, replayed.status_code) == (True, 202)


@pytest.mark.parametrize("mode", ["spoofed_code", "spoofed_refusal"])
async def test_a_result_or_refusal_whose_code_is_no_key_is_unknown_and_logged_naming_the_code(
    service: TransactionService, db: Database, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A code holding a bidi override or a line feed is no machine code: the result is refused like
    any invalid one (the plugin may have acted, so ``unknown``), and the log line names ``code``, what it
    must be and the code escaped; the code never reaches the journal, the answer or the log as the plugin
    wrote it."""
    with caplog.at_level(logging.WARNING, logger="fulcrum.transactions"):
        outcome = await service.submit(C3, "k-1", body(mode=mode), client_id=APP)
    assert outcome.status_code == 202
    assert isinstance(outcome.body, TransactionView)
    assert outcome.body.status == "unknown"
    [row] = rows(db)
    assert row.status == "unknown"
    lines = [r.getMessage() for r in caplog.records if "is invalid" in r.getMessage()]
    assert lines
    # in words, with the code escaped: what a code is made of and what it held, never a regular expression
    code = "'shop.\\u202edeclined'" if mode == "spoofed_code" else "'shop.sold_out\\n'"
    said = "code: must be 1 to 128 ASCII letters, digits and '.', '_', ':' or '-', starting with a letter"
    assert all(said in line and f"; it is {code}" in line for line in lines), lines
    assert not any("regex" in line for line in lines), lines
    assert not any("\u202e" in line or "sold_out\n" in line for line in lines)


# --- reading -------------------------------------------------------------------------------------------


async def test_get_returns_own_transaction_and_404_for_others(service: TransactionService) -> None:
    """A customer reads their transaction; another customer's id is indistinguishable from a missing one."""
    outcome = await service.submit(C3, "k-1", body(), client_id=APP)
    view = service.get(C3, outcome.transaction_id)
    assert view.status == "succeeded"
    others = ((PERSONAS["affluent"].id, outcome.transaction_id), (C3, "missing"))
    for customer, tx_id in others:
        with pytest.raises(NotFound) as info:
            service.get(customer, tx_id)
        assert info.value.detail == f"no transaction {tx_id!r}"
    with pytest.raises(NotFound) as info:  # a long id is echoed cut short, with its length
        service.get(C3, "x" * 500)
    assert info.value.detail == f"no transaction '{'x' * 64}…' (500 characters)"


def test_types_for_lists_schema_and_suitability(service: TransactionService) -> None:
    """Types carry the owning plugin, the params JSON schema and whether the customer may use them."""
    listing = service.types_for(C3)
    by_key = {t.key: t for t in listing.items}
    assert set(by_key) == {"shop.buy", "shop.note"}
    buy = by_key["shop.buy"]
    assert buy.plugin == "shop"
    assert buy.suitability == "depends_on_params"
    schema = msgspec.json.encode(buy.params_schema).decode()
    assert "amount_fen" in schema
    assert "product" in schema
    assert by_key["shop.note"].suitability == "ok"


async def test_a_plugin_suspended_after_the_checks_is_not_called(
    service: TransactionService, db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kill switch lands between the checks and the call: the journaled row is failed with 503
    (nothing carried out) and the plugin is never asked."""
    journal_pending = service.journal.insert_pending

    def create_then_suspend(*args: Any, **kwargs: Any) -> Any:
        created = journal_pending(*args, **kwargs)
        service._plugins.set_policy({"shop": PluginPolicy(active=False, granted_scopes=frozenset())})  # type: ignore[attr-defined]
        return created

    monkeypatch.setattr(service.journal, "insert_pending", create_then_suspend)
    outcome = await service.submit(C3, "k-1", body(), client_id=APP)
    assert outcome.status_code == 503
    assert isinstance(outcome.body, TransactionProblem)
    assert outcome.body.code == "transaction.plugin_unavailable"
    assert rows(db)[0].status == "failed"
    assert shop.calls == []


NARROWED = {"shop": PluginPolicy(active=True, granted_scopes=frozenset({"profile:basic"}))}
"""A policy that keeps ``shop`` running but withdraws ``transactions:write`` from its grant."""


async def test_a_plugin_whose_grant_lost_transactions_write_after_the_checks_is_not_called(
    service: TransactionService, db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry narrows the grant between the checks and the call (the plugin stays on for its other
    hooks): like the kill switch, the journaled row fails with 503 and the plugin is never asked."""
    journal_pending = service.journal.insert_pending

    def create_then_narrow(*args: Any, **kwargs: Any) -> Any:
        created = journal_pending(*args, **kwargs)
        service._plugins.set_policy(NARROWED)  # type: ignore[attr-defined]
        return created

    monkeypatch.setattr(service.journal, "insert_pending", create_then_narrow)
    outcome = await service.submit(C3, "k-1", body(), client_id=APP)
    assert outcome.status_code == 503
    assert isinstance(outcome.body, TransactionProblem)
    assert outcome.body.code == "transaction.plugin_unavailable"
    [row] = rows(db)
    assert (row.status, row.retryable) == ("failed", True)
    assert shop.calls == []


async def test_reconciliation_does_not_ask_a_plugin_no_longer_granted_its_types_scopes(
    service: TransactionService, db: Database, shop: Shop
) -> None:
    """An unknown transaction's plugin lost ``transactions:write`` since: asking again could carry the
    transaction out now, so it is not asked (said why) and the row stays unknown for operations."""
    assert (await service.submit(C3, "k-1", body(mode="unsure"), client_id=APP)).status_code == 202
    shop.override = "ok"
    service._plugins.set_policy(NARROWED)  # type: ignore[attr-defined]
    not_asked: dict[str, str] = {}
    [row] = rows(db)
    assert await service.resolve_unknown(not_asked=not_asked) == [(row.id, "unknown")]
    assert "transactions:write" in not_asked[row.id]
    assert len(shop.calls) == 1  # the first attempt only
    assert rows(db)[0].status == "unknown"


def _while_queued(
    service: TransactionService, monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]
) -> Dispatcher:
    """Give ``service`` a dispatcher of one plugin thread, and once the next row is journaled hold that
    thread a moment and then ``change`` something: the plugin's call waits queued for the thread,
    checked by then, and ``change`` lands during the wait. Returns the dispatcher, to close."""
    dispatcher = Dispatcher(service._settings, max_threads=1)
    monkeypatch.setattr(service, "_dispatcher", dispatcher)
    journal_pending = service.journal.insert_pending

    def hold_then_change() -> None:
        time.sleep(0.3)  # the call is queued behind this meanwhile
        change()

    def create_then_hold(*args: Any, **kwargs: Any) -> Any:
        created = journal_pending(*args, **kwargs)
        dispatcher._executor.submit(hold_then_change)
        return created

    monkeypatch.setattr(service.journal, "insert_pending", create_then_hold)
    return dispatcher


@pytest.mark.parametrize("policy", [
    {"shop": PluginPolicy(active=False, granted_scopes=frozenset())},
    NARROWED,
], ids=["suspended", "narrowed"])
async def test_a_sync_call_waiting_for_a_thread_is_checked_again_as_it_starts(
    service: TransactionService, db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch,
    policy: dict[str, PluginPolicy],
) -> None:
    """The kill switch or a narrowed grant lands while the plugin's sync call waits for a worker thread:
    the call is checked as it starts, so the plugin never runs, and the row fails retryable (503), as
    when it lands before the call is handed over."""
    dispatcher = _while_queued(service, monkeypatch, lambda: service._plugins.set_policy(policy))  # type: ignore[attr-defined]
    try:
        outcome = await service.submit(C3, "k-1", body(), client_id=APP)
    finally:
        dispatcher.close()
    assert outcome.status_code == 503
    assert isinstance(outcome.body, TransactionProblem)
    assert outcome.body.code == "transaction.plugin_unavailable"
    [row] = rows(db)
    assert (row.status, row.retryable) == ("failed", True)
    assert shop.calls == []


async def test_a_consent_withdrawn_while_a_sync_call_waits_for_a_thread_stops_it(
    make_service: Callable[..., TransactionService], db: Database, shop: Shop,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A partner's context was built on the customer's consent to ``profile:basic``; the customer
    revokes it while the call waits for a thread: the plugin never runs (503, retryable), and a retry,
    checked afresh without that consent, is carried out."""
    from fulcrum_core.data.consents import ConsentStore

    service = make_service(kind="partner")
    consents = ConsentStore(db)
    consent = consents.grant(C3, "shop", ["profile:basic"], "展示", utcnow() + timedelta(days=30))
    dispatcher = _while_queued(service, monkeypatch, lambda: consents.revoke(consent, C3) and None)
    try:
        outcome = await service.submit(C3, "k-1", body(), client_id=APP)
    finally:
        dispatcher.close()
    assert outcome.status_code == 503, outcome.body
    [row] = rows(db)
    assert (row.status, row.retryable) == ("failed", True)
    assert shop.calls == []
    monkeypatch.undo()
    retried = await service.submit(C3, "k-1", body(), client_id=APP)
    assert retried.status_code == 201
    assert len(shop.calls) == 1


def _refuse_without_calling(service: TransactionService, why: str) -> Callable[[], None]:
    """Make the host refuse to call ``shop`` (``why``) once the next row is journaled, as when that
    happens between the checks and the call; returns the undo."""
    guard = service._dispatcher.resilience.get("shop", "execute_transaction")  # type: ignore[attr-defined]
    if why == "breaker_open":
        guard.breaker.trip()
        return guard.breaker.reset  # type: ignore[no-any-return]
    held = 0
    journal_pending = service.journal.insert_pending

    def create_then_refuse(row: TransactionRow) -> bool:
        nonlocal held
        if why == "bulkhead_full":  # other requests took every place meanwhile
            while guard.bulkhead.try_enter():
                held += 1
        else:  # the kill switch
            service._plugins.set_policy({"shop": PluginPolicy(active=False, granted_scopes=frozenset())})  # type: ignore[attr-defined]
        return journal_pending(row)

    service.journal.insert_pending = create_then_refuse  # type: ignore[method-assign]

    def undo() -> None:
        service.journal.insert_pending = journal_pending  # type: ignore[method-assign]
        for _ in range(held):
            guard.bulkhead.leave()
        service._plugins.set_policy(None)  # type: ignore[attr-defined]

    return undo


@pytest.mark.parametrize("why", ["breaker_open", "bulkhead_full", "suspended"])
async def test_a_transaction_the_plugin_was_never_asked_to_run_is_run_by_a_retry_with_the_same_key(
    service: TransactionService, db: Database, shop: Shop, why: str
) -> None:
    """Breaker open, bulkhead full, suspended after the checks: the host is sure the plugin did
    nothing, so the 503 says when to retry (Retry-After) and a retry with the same key and body runs
    the same transaction (same id) instead of replaying the 503 forever; the journal keeps the refused
    attempt, and once the transaction succeeded a retry replays the success."""
    undo = _refuse_without_calling(service, why)
    refused = await service.submit(C3, "k-1", body(), client_id=APP)
    assert refused.status_code == 503
    assert isinstance(refused.body, TransactionProblem)
    assert refused.body.code == "transaction.plugin_unavailable"
    assert refused.retry_after is not None
    assert shop.calls == []
    tx_id = refused.transaction_id

    if why != "breaker_open":  # still full or switched off: the retry's checks refuse it, unjournaled
        with pytest.raises(PluginBusyError if why == "bulkhead_full" else Forbidden):
            await service.submit(C3, "k-1", body(), client_id=APP)
        refusals = 1
    else:  # nothing has changed: refused again (journaled as a second attempt), not replayed
        still = await service.submit(C3, "k-1", body(), client_id=APP)
        assert (still.status_code, still.replayed, still.transaction_id) == (503, False, tx_id)
        assert still.retry_after is not None
        refusals = 2
    undo()

    retried = await service.submit(C3, "k-1", body(), client_id=APP)
    assert (retried.status_code, retried.replayed, retried.transaction_id) == (201, False, tx_id)
    [request] = shop.calls
    assert (request.id, request.idempotency_key) == (tx_id, plugin_key("k-1"))
    [row] = rows(db)
    assert (row.id, row.status, row.response_status, row.attempts, row.retryable) == (
        tx_id, "succeeded", 201, refusals + 1, False
    )
    again = await service.submit(C3, "k-1", body(), client_id=APP)
    assert (again.status_code, again.replayed, again.transaction_id) == (201, True, tx_id)
    assert len(shop.calls) == 1

    from fulcrum_core.data.models import TransactionAttemptRow

    with db.read_session() as session:
        earlier = list(session.scalars(select(TransactionAttemptRow).order_by(TransactionAttemptRow.attempt)))
    # Refused the same way each time: one history row for the run, counting the repeats.
    assert [(a.transaction_id, a.attempt, a.status, a.response_status, a.repeats) for a in earlier] == [
        (tx_id, 1, "failed", 503, refusals - 1)
    ]
    assert all('"transaction.plugin_unavailable"' in (a.response_body or "") for a in earlier)


async def test_a_retry_of_a_refused_transaction_is_checked_afresh(
    service: TransactionService, db: Database, shop: Shop
) -> None:
    """A retry that runs a refused transaction again goes through every check again: a plugin switched
    off meanwhile is a 403 (not stored), the row stays refused and retryable, and a retry with another
    body under the key is still 422."""
    undo = _refuse_without_calling(service, "breaker_open")
    assert (await service.submit(C3, "k-1", body(), client_id=APP)).status_code == 503
    undo()
    service._plugins.set_policy({"shop": PluginPolicy(active=False, granted_scopes=frozenset())})  # type: ignore[attr-defined]
    with pytest.raises(Forbidden) as off:
        await service.submit(C3, "k-1", body(), client_id=APP)
    assert off.value.code == "transaction.plugin_inactive"
    service._plugins.set_policy(None)  # type: ignore[attr-defined]
    with pytest.raises(Unprocessable) as other:
        await service.submit(C3, "k-1", body(amount=20_000), client_id=APP)
    assert other.value.code == "idempotency.mismatch"
    [row] = rows(db)
    assert (row.status, row.response_status, row.attempts, row.retryable) == ("failed", 503, 1, True)
    assert shop.calls == []


async def test_a_refused_transaction_is_not_run_by_another_plugin_that_took_its_type_over(
    service: TransactionService, make_service: Callable[..., TransactionService], db: Database, shop: Shop
) -> None:
    """Refused while ``shop`` owned ``shop.buy``, retried once ``mall`` owns it: the customer sent it
    to ``shop`` (the 503 said so), so it is not carried out by another partner under the same id; a
    422 naming the key says to send it anew, nothing is written, and ``shop`` back may still run it."""
    undo = _refuse_without_calling(service, "breaker_open")
    refused = await service.submit(C3, "k-1", body(), client_id=APP)
    undo()
    assert refused.status_code == 503
    mall = make_service(owner="mall")
    with pytest.raises(Unprocessable) as moved:
        await mall.submit(C3, "k-1", body(), client_id=APP)
    assert (moved.value.code, moved.value.field) == ("idempotency.owner_changed", "Idempotency-Key")
    assert "'shop'" in moved.value.detail
    assert "'mall'" in moved.value.detail
    assert shop.calls == []
    [row] = rows(db)
    assert (row.plugin_id, row.status, row.attempts, row.retryable) == ("shop", "failed", 1, True)
    assert (await service.submit(C3, "k-1", body(), client_id=APP)).status_code == 201


async def test_a_late_write_of_a_refused_attempt_leaves_the_retry_that_took_the_row_alone(
    service: TransactionService, db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal was written but the database's answer lost, and a concurrent retry took the row
    back to pending and is running it before the refused attempt writes its outcome again: that
    late write must not turn the running attempt back into a retryable 503, which the next retry
    would run a second time."""
    from fulcrum_core.data.errors import DatabaseUnavailable
    from fulcrum_core.transactions.journal import Journal

    finish = Journal.finish
    taken: list[TransactionRow] = []

    def committed_then_lost(self: Journal, tx_id: str, **kwargs: Any) -> bool:
        done = finish(self, tx_id, **kwargs)
        if not taken:  # a retry reads the refusal just committed and takes the row
            [row] = rows(db)
            retry = self.reclaim(row, plugin_id=row.plugin_id, amount_fen=row.amount_fen,
                                 risk_level=row.risk_level, now=utcnow())
            assert retry is not None
            taken.append(retry)
            raise DatabaseUnavailable("connection lost before the commit was acknowledged")
        return done

    monkeypatch.setattr(Journal, "finish", committed_then_lost)
    undo = _refuse_without_calling(service, "breaker_open")
    refused = await service.submit(C3, "k-1", body(), client_id=APP)
    undo()
    assert refused.status_code == 503
    [row] = rows(db)
    assert (row.status, row.attempts, row.retryable) == ("pending", 2, False)  # the retry's, running


async def test_retry_after_of_a_refusal_by_an_open_breaker_is_when_it_lets_calls_through(
    service: TransactionService, db: Database, shop: Shop
) -> None:
    """A breaker that opened for 30 s refuses every call until then: the 503 says to retry in 30 s
    (and so does a replay of it), not in 1 s, which would have every retry refused again and
    journaled as one more attempt; a full bulkhead frees any moment, so 1 s stays right there."""
    guard = service._dispatcher.resilience.get("shop", "execute_transaction")  # type: ignore[attr-defined]
    assert guard.breaker.open_for(30)
    refused = await service.submit(C3, "k-1", body(), client_id=APP)
    # The seconds left of the 30 (the breaker runs on the wall clock: a loaded machine takes a few).
    assert refused.status_code == 503
    assert refused.retry_after is not None
    assert 20 < refused.retry_after <= 30
    replayed = service._replay(rows(db)[0], rows(db)[0].request_hash, APP).retry_after
    assert replayed is not None
    assert 20 < replayed <= refused.retry_after
    guard.breaker.reset()
    undo = _refuse_without_calling(service, "bulkhead_full")
    full = await service.submit(C3, "k-2", body(), client_id=APP)
    undo()
    assert (full.status_code, full.retry_after) == (503, 1)
    assert shop.calls == []


async def test_a_retry_that_runs_a_refused_transaction_is_dated_when_it_runs(
    service: TransactionService, db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused at 23:59 on 31 December (bank time) and retried at 00:01 on 1 January: the plugin is
    asked as of the retry, ``request.created_at`` agreeing with ``ctx.now`` (a pension contribution
    counts in the year it is paid, a sale window is judged when the sale happens), and the journal
    dates the transaction then, so the customer sees it and reconciliation asks about it as of then."""
    import fulcrum_core.transactions.service as service_module

    seen: list[tuple[datetime, datetime]] = []
    execute = shop.execute

    def execute_seeing_now(ctx: Any, request: TransactionRequest) -> Any:
        seen.append((ctx.now, request.created_at))
        return execute(ctx, request)

    monkeypatch.setattr(shop, "execute", execute_seeing_now)
    dec31 = datetime(2026, 12, 31, 15, 59, tzinfo=UTC)
    jan1 = datetime(2026, 12, 31, 16, 1, tzinfo=UTC)
    monkeypatch.setattr(service_module, "utcnow", lambda: dec31)
    undo = _refuse_without_calling(service, "breaker_open")
    refused = await service.submit(C3, "k-1", body(), client_id=APP)
    assert refused.status_code == 503
    undo()
    monkeypatch.setattr(service_module, "utcnow", lambda: jan1)
    retried = await service.submit(C3, "k-1", body(), client_id=APP)
    assert retried.status_code == 201
    assert isinstance(retried.body, TransactionView)
    assert seen == [(jan1, jan1)]
    assert retried.body.created_at == jan1
    [row] = rows(db)
    assert (row.created_at, row.updated_at) == (jan1, jan1)
    assert service.get(C3, row.id).created_at == jan1

    from fulcrum_core.data.models import TransactionAttemptRow

    with db.read_session() as session:
        [earlier] = session.scalars(select(TransactionAttemptRow))
    assert earlier.finished_at == dec31  # when the refused attempt was answered stays on record


@pytest.mark.parametrize("mode", ["boom", "fail", "refuse"])
async def test_a_transaction_the_plugin_was_asked_to_run_is_never_run_again_by_a_retry(
    service: TransactionService, db: Database, shop: Shop, mode: str
) -> None:
    """The plugin raised (it may have acted) or refused: the outcome is final, a retry replays it."""
    first = await service.submit(C3, "k-1", body(mode=mode), client_id=APP)
    again = await service.submit(C3, "k-1", body(mode=mode), client_id=APP)
    assert again.replayed
    assert (again.status_code, again.retry_after) == (first.status_code, None)
    assert len(shop.calls) == 1
    assert rows(db)[0].retryable is False


def test_types_for_hides_types_of_inactive_plugins(service: TransactionService) -> None:
    """A switched-off plugin's types disappear from the listing on the next call."""
    service._plugins.set_policy({"shop": PluginPolicy(active=False, granted_scopes=frozenset())})  # type: ignore[attr-defined]
    assert service.types_for(C3).items == []


# --- reconciliation ------------------------------------------------------------------------------------


async def test_reconcile_marks_abandoned_pending_rows_unknown(
    service: TransactionService, db: Database
) -> None:
    """A row left ``pending`` by a dead worker becomes ``unknown``, is listed, and replays as 202."""
    long_ago = utcnow() - timedelta(hours=1)
    with db.session() as session:
        session.add(TransactionRow(
            id="abandoned", customer_ref=C3, client_id=APP, idempotency_key="k-dead", request_hash="0" * 64,
            type="shop.buy", plugin_id="shop", params={}, amount_fen=1, risk_level="R1", status="pending",
            created_at=long_ago, updated_at=long_ago,
        ))
    fresh = await service.submit(C3, "k-live", body(), client_id=APP)
    report = service.reconcile_unknown()
    assert report.marked_unknown == ["abandoned"]
    assert [v.id for v in report.unknown] == ["abandoned"]
    assert service.get(C3, fresh.transaction_id).status == "succeeded"
    with db.read_session() as session:
        assert session.scalar(select(func.count()).where(TransactionRow.status == "pending")) == 0
    assert service.reconcile_unknown().marked_unknown == []



def test_reconcile_marks_and_lists_every_abandoned_row_past_a_page(db: Database) -> None:
    """More abandoned rows than one page (``limit``): one run marks every one unknown and lists every
    unknown row; it stopped at the first page, so the rest answered 409 until a later run, and the
    report's "unknown in total" counted a page, not the total."""
    from fulcrum_core.transactions.journal import Journal
    from fulcrum_core.transactions.reconcile import reconcile

    long_ago = utcnow() - timedelta(hours=1)
    with db.session() as session:
        for i in range(5):
            session.add(TransactionRow(
                id=f"abandoned-{i}", customer_ref=C3, client_id=APP, idempotency_key=f"k-{i}",
                request_hash="0" * 64, type="shop.buy", plugin_id="shop", params={}, amount_fen=1,
                risk_level="R1", status="pending", created_at=long_ago, updated_at=long_ago,
            ))
    report = reconcile(
        Journal(db), older_than=timedelta(minutes=1), now=utcnow(), retry_window_seconds=86_400,
        problem_base="https://fulcrum.example/problems/", limit=2,
    )
    every = [f"abandoned-{i}" for i in range(5)]
    assert sorted(report.marked_unknown) == every
    assert sorted(v.id for v in report.unknown) == every
    assert {r.status for r in rows(db)} == {"unknown"}

def test_bank_calendar_decides_expiry(service: TransactionService) -> None:
    """Expiry is judged on the bank's (UTC+8) calendar date."""
    profile = RiskProfile(tolerance="C3", assessed_on=date(2024, 1, 1), expires_on=service._today())
    assert not profile.is_expired(service._today())


async def test_a_risk_of_that_hangs_is_cut_off_at_the_deadline_and_nothing_is_journaled(
    make_service: Callable[..., TransactionService], shop: Shop, db: Database
) -> None:
    """Plugin code that runs before journaling (``risk_of``) is held to the transaction deadline: 502
    naming the plugin, no row, and ``execute_transaction`` never called."""
    service = make_service(deadlines=msgspec.structs.replace(Settings().deadlines, execute_transaction=200))
    stuck = threading.Event()

    def hanging(_: Any) -> Any:
        stuck.set()
        shop.release.wait(30)
        return "R1"

    shop.risk_of = hanging
    with pytest.raises(PluginFaultError) as late:
        await service.submit(C3, "k-hang", body(), client_id=APP)
    assert stuck.is_set()
    assert late.value.status == 502
    assert "did not finish checking this shop.buy request within 200 ms" in str(late.value)
    assert rows(db) == []
    assert shop.calls == []
    shop.release.set()  # let the abandoned thread end before the loop's executor shuts down


async def test_checking_code_that_hangs_holds_the_plugins_bulkhead_and_then_gives_it_back(
    make_service: Callable[..., TransactionService], shop: Shop, db: Database
) -> None:
    """Each thread stuck in a plugin's checking code keeps a place in that plugin's bulkhead after the
    request gave up on it; a full bulkhead refuses the next request at once (503, Retry-After, nothing
    journaled, no thread), and the place is free again when the stuck code returns."""
    service = make_service(
        bulkhead_size=1, deadlines=msgspec.structs.replace(Settings().deadlines, execute_transaction=200)
    )
    entered: list[str] = []

    def hanging(_: Any) -> Any:
        entered.append(threading.current_thread().name)
        shop.release.wait(30)
        return "R1"

    shop.risk_of = hanging
    with pytest.raises(PluginFaultError):
        await service.submit(C3, "k-stuck", body(), client_id=APP)
    with pytest.raises(PluginBusyError) as busy:
        await service.submit(C3, "k-busy", body(), client_id=APP)
    assert busy.value.status == 503
    assert busy.value.code == "transaction.plugin_unavailable"
    assert busy.value.headers == {"Retry-After": "1"}
    assert "shop" in busy.value.detail
    assert len(entered) == 1  # the refused request never ran plugin code
    assert rows(db) == []
    shop.release.set()
    guard = service._dispatcher.resilience.get("shop", "execute_transaction")  # type: ignore[attr-defined]
    for _ in range(200):  # the stuck thread ends and gives its place back through the loop
        if guard.bulkhead.active == 0:
            break
        await asyncio.sleep(0.01)
    assert guard.bulkhead.active == 0
    shop.risk_of = lambda p: RISK[p.product]
    outcome = await service.submit(C3, "k-after", body(), client_id=APP)
    assert outcome.status_code == 201


async def test_plugin_code_before_journaling_runs_in_a_plugin_thread(
    service: TransactionService, shop: Shop
) -> None:
    """``risk_of`` runs in the dispatcher's plugin threads, so a hanging one cannot starve the loop's
    default executor that the journal reads use."""
    seen: list[str] = []

    def rating(params: Any) -> Any:
        seen.append(threading.current_thread().name)
        return RISK[params.product]

    shop.risk_of = rating
    await service.submit(C3, "k-thread", body(), client_id=APP)
    assert len(seen) == 1
    assert seen[0].startswith("fulcrum-plugin")


# --- the retry window of a transaction the plugin never saw -------------------------------------------


def _attempt_history(db: Database) -> list[tuple[int, str, int | None]]:
    """Each kept earlier outcome: (attempt, status, response status)."""
    from fulcrum_core.data.models import TransactionAttemptRow

    with db.read_session() as session:
        kept = session.scalars(select(TransactionAttemptRow).order_by(TransactionAttemptRow.attempt))
        return [(a.attempt, a.status, a.response_status) for a in kept]


async def test_a_never_asked_transaction_retried_after_its_window_is_refused_and_ended(
    service: TransactionService, db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused unasked (503) on Monday, retried a day and a second later with the same key: a 422
    ``idempotency.expired`` naming the key and when it was first seen, the plugin not asked; the
    journal ends the row as failed (no longer retryable, the 503 kept as its attempt) and every
    later retry replays the 422, even once the plugin is back."""
    import fulcrum_core.transactions.service as service_module

    monday = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    monkeypatch.setattr(service_module, "utcnow", lambda: monday)
    undo = _refuse_without_calling(service, "breaker_open")
    refused = await service.submit(C3, "k-late", body(), client_id=APP)
    assert refused.status_code == 503
    undo()
    later = monday + timedelta(days=1, seconds=1)
    monkeypatch.setattr(service_module, "utcnow", lambda: later)
    expired = await service.submit(C3, "k-late", body(), client_id=APP)
    assert (expired.status_code, expired.replayed, expired.retry_after) == (422, False, None)
    problem = expired.body
    assert isinstance(problem, TransactionProblem)
    assert (problem.code, problem.field, problem.first_seen_at) == (
        "idempotency.expired", "Idempotency-Key", monday
    )
    assert "'k-late'" in problem.detail
    assert monday.isoformat() in problem.detail
    assert "within 24 hours" in problem.detail
    assert problem.transaction is not None
    assert (problem.transaction.id, problem.transaction.status) == (refused.transaction_id, "failed")
    assert shop.calls == []
    [row] = rows(db)
    assert (row.status, row.retryable, row.response_status, row.attempts) == ("failed", False, 422, 1)
    assert (row.first_seen_at, row.updated_at) == (monday, later)
    assert _attempt_history(db) == [(1, "failed", 503)]
    again = await service.submit(C3, "k-late", body(), client_id=APP)
    assert (again.status_code, again.replayed) == (422, True)
    assert msgspec.json.encode(again.body) == msgspec.json.encode(expired.body)
    assert shop.calls == []
    assert service.get(C3, row.id).status == "failed"


async def test_the_retry_window_counts_from_the_first_request_not_the_last_attempt(
    make_service: Callable[..., TransactionService], db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a one-hour window: a retry 59 minutes after the first request, refused again, does not
    restart the clock; one 61 minutes after the first request is refused as expired. A transaction
    that was carried out replays its success whenever it is retried, window or not."""
    import fulcrum_core.transactions.service as service_module

    service = make_service(transaction_retry_window_seconds=3600)
    start = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    clock = [start]
    monkeypatch.setattr(service_module, "utcnow", lambda: clock[0])
    assert (await service.submit(C3, "k-done", body(), client_id=APP)).status_code == 201
    undo = _refuse_without_calling(service, "breaker_open")
    assert (await service.submit(C3, "k-1", body(), client_id=APP)).status_code == 503
    clock[0] = start + timedelta(minutes=59)
    still = await service.submit(C3, "k-1", body(), client_id=APP)
    assert (still.status_code, still.replayed) == (503, False)  # run again, refused again: attempt 2
    undo()
    clock[0] = start + timedelta(minutes=61)
    expired = await service.submit(C3, "k-1", body(), client_id=APP)
    assert isinstance(expired.body, TransactionProblem)
    assert (expired.status_code, expired.body.code, expired.body.first_seen_at) == (
        422, "idempotency.expired", start
    )
    clock[0] = start + timedelta(days=30)
    done = await service.submit(C3, "k-done", body(), client_id=APP)
    assert (done.status_code, done.replayed) == (201, True)
    assert len(shop.calls) == 1  # only k-done's first request reached the plugin


async def test_a_retry_just_inside_the_window_runs_the_transaction(
    service: TransactionService, db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second before the default 24 hours are up, the retry still runs it as the same transaction."""
    import fulcrum_core.transactions.service as service_module

    start = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    monkeypatch.setattr(service_module, "utcnow", lambda: start)
    undo = _refuse_without_calling(service, "breaker_open")
    refused = await service.submit(C3, "k-1", body(), client_id=APP)
    undo()
    monkeypatch.setattr(service_module, "utcnow", lambda: start + timedelta(hours=24, seconds=-1))
    retried = await service.submit(C3, "k-1", body(), client_id=APP)
    assert (retried.status_code, retried.transaction_id) == (201, refused.transaction_id)
    [row] = rows(db)
    assert (row.first_seen_at, row.attempts) == (start, 2)


async def test_reconciliation_ends_never_retried_transactions_once_their_window_has_closed(
    make_service: Callable[..., TransactionService], db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 the plugin never saw, never retried: reconciliation within the window leaves it retryable;
    the first run after the window closes ends it as a late retry would (failed, not retryable, the 503
    kept as its attempt, the 422 ``idempotency.expired`` stored), and a later retry replays that 422
    without asking the plugin. A younger row stays retryable; before, such rows stayed retryable forever."""
    import fulcrum_core.transactions.service as service_module

    service = make_service(transaction_retry_window_seconds=3600)
    start = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    clock = [start]
    monkeypatch.setattr(service_module, "utcnow", lambda: clock[0])
    undo = _refuse_without_calling(service, "breaker_open")
    old = await service.submit(C3, "k-old", body(), client_id=APP)
    clock[0] = start + timedelta(minutes=30)
    young = await service.submit(C3, "k-young", body(), client_id=APP)
    undo()
    assert (old.status_code, young.status_code) == (503, 503)
    within = service.reconcile_unknown(now=start + timedelta(minutes=59, seconds=59))
    assert within.expired == []
    assert all(row.retryable for row in rows(db))
    closed = start + timedelta(hours=1)
    report = service.reconcile_unknown(now=closed)
    assert report.expired == [old.transaction_id]
    by_id = {row.id: row for row in rows(db)}
    ended, kept = by_id[old.transaction_id], by_id[young.transaction_id]
    assert (ended.status, ended.retryable, ended.response_status, ended.attempts) == ("failed", False, 422, 1)
    assert (ended.first_seen_at, ended.updated_at) == (start, closed)
    assert (kept.status, kept.retryable, kept.response_status) == ("failed", True, 503)
    assert _attempt_history(db) == [(1, "failed", 503)]
    assert service.get(C3, old.transaction_id).updated_at == closed
    assert service.reconcile_unknown(now=closed + timedelta(minutes=1)).expired == []  # ended once
    clock[0] = closed + timedelta(minutes=5)
    late = await service.submit(C3, "k-old", body(), client_id=APP)
    assert (late.status_code, late.replayed, late.retry_after) == (422, True, None)
    assert isinstance(late.body, TransactionProblem)
    assert (late.body.code, late.body.field, late.body.first_seen_at) == (
        "idempotency.expired",
        "Idempotency-Key",
        start,
    )
    assert "'k-old'" in late.body.detail
    assert "within 1 hour of" in late.body.detail
    assert late.body.transaction is not None
    assert (late.body.transaction.status, late.body.transaction.updated_at) == ("failed", closed)
    assert shop.calls == []
    within = await service.submit(C3, "k-young", body(), client_id=APP)
    assert within.status_code == 201  # still within its window


async def test_a_retry_whose_window_closes_while_it_is_checked_does_not_run_it(
    service: TransactionService, db: Database, shop: Shop
) -> None:
    """The journal takes a row back to pending only while its window is open, in the same statement:
    a retry checked just before the window closed cannot run the transaction just after."""
    undo = _refuse_without_calling(service, "breaker_open")
    await service.submit(C3, "k-1", body(), client_id=APP)
    undo()
    [row] = rows(db)
    taken = service.journal.reclaim(
        row, plugin_id=row.plugin_id, amount_fen=row.amount_fen, risk_level=row.risk_level, now=utcnow(),
        first_seen_after=row.first_seen_at,
    )
    assert taken is None
    [still] = rows(db)
    assert (still.status, still.retryable, still.attempts) == ("failed", True, 1)
    assert shop.calls == []


def test_the_retry_window_is_a_setting_read_from_the_environment() -> None:
    """``FULCRUM_TRANSACTION_RETRY_WINDOW_SECONDS`` sets it (default one day); zero or more than a
    week is refused naming the variable."""
    from fulcrum_core.settings import SettingsError, load_settings

    assert load_settings(environ={}).transaction_retry_window_seconds == 86_400
    env = {"FULCRUM_TRANSACTION_RETRY_WINDOW_SECONDS": "3600"}
    assert load_settings(environ=env).transaction_retry_window_seconds == 3600
    for bad in ("0", str(8 * 86_400), "soon"):
        with pytest.raises(SettingsError, match="FULCRUM_TRANSACTION_RETRY_WINDOW_SECONDS"):
            load_settings(environ={"FULCRUM_TRANSACTION_RETRY_WINDOW_SECONDS": bad})


# --- retries into an open breaker ---------------------------------------------------------------------


async def test_retries_into_an_open_breaker_are_counted_in_one_history_row_not_one_each(
    service: TransactionService, db: Database, shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that ignores Retry-After and retries five times while the breaker stays open: each
    retry is an attempt (``attempts`` counts them) refused the same way, and the history keeps one
    row for the run (the first refusal, its repeats and when the last was answered) instead of
    one row per retry; the success once the breaker closes is the row's own outcome."""
    import fulcrum_core.transactions.service as service_module

    start = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    clock = [start]
    monkeypatch.setattr(service_module, "utcnow", lambda: clock[0])
    undo = _refuse_without_calling(service, "breaker_open")
    refused = await service.submit(C3, "k-1", body(), client_id=APP)
    for n in range(1, 6):
        clock[0] = start + timedelta(seconds=n)
        again = await service.submit(C3, "k-1", body(), client_id=APP)
        tx_id = refused.transaction_id
        assert (again.status_code, again.replayed, again.transaction_id) == (503, False, tx_id)
    undo()
    clock[0] = start + timedelta(seconds=10)
    done = await service.submit(C3, "k-1", body(), client_id=APP)
    assert done.status_code == 201
    assert isinstance(done.body, TransactionView)
    assert done.body.attempts == 7
    from fulcrum_core.data.models import TransactionAttemptRow

    with db.read_session() as session:
        [run] = session.scalars(select(TransactionAttemptRow))
    assert (run.attempt, run.repeats, run.status, run.response_status) == (1, 5, "failed", 503)
    assert (run.finished_at, run.last_finished_at) == (start, start + timedelta(seconds=5))
    assert len(shop.calls) == 1


async def test_an_attempt_that_ended_otherwise_starts_a_history_row_of_its_own(
    service: TransactionService, db: Database
) -> None:
    """Only attempts that follow one another and ended the same way share a row: an outcome of
    another status after a run is kept as its own row."""
    from fulcrum_core.data.models import TransactionAttemptRow

    undo = _refuse_without_calling(service, "breaker_open")
    await service.submit(C3, "k-1", body(), client_id=APP)
    await service.submit(C3, "k-1", body(), client_id=APP)
    undo()
    [row] = rows(db)
    assert row.attempts == 2
    row.response_status = 599  # as if attempt 2 had ended another way than attempt 1
    taken = service.journal.reclaim(
        row, plugin_id=row.plugin_id, amount_fen=row.amount_fen, risk_level=row.risk_level, now=utcnow()
    )
    assert taken is not None
    with db.read_session() as session:
        kept = session.scalars(select(TransactionAttemptRow).order_by(TransactionAttemptRow.attempt))
        assert [(a.attempt, a.repeats, a.response_status) for a in kept] == [(1, 0, 503), (2, 0, 599)]


async def test_data_the_host_could_not_give_the_plugin_mid_call_is_final_not_retried(
    service: TransactionService, db: Database, shop: Shop
) -> None:
    """``DataUnavailable`` raised inside ``execute_transaction``: the plugin was asked and may have
    acted before the read that failed (called its partner, claimed the key in its storage), which
    the host cannot see, so unlike a call refused before it started this stays a final 502 and a
    retry with the same key replays it instead of asking the plugin again."""
    first = await service.submit(C3, "k-1", body(mode="no_data"), client_id=APP)
    assert isinstance(first.body, TransactionProblem)
    assert (first.status_code, first.body.code, first.retry_after) == (502, "transaction.plugin_error", None)
    again = await service.submit(C3, "k-1", body(mode="no_data"), client_id=APP)
    assert (again.status_code, again.replayed, again.retry_after) == (502, True, None)
    assert len(shop.calls) == 1
    [row] = rows(db)
    assert (row.status, row.retryable, row.attempts) == ("failed", False, 1)
