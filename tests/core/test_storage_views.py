"""Which storage view each path gets: display hooks the cached view, transactions the fresh one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import msgspec
import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_core.data.storage_handle import StorageHandle
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.oauth.server import APP_CLIENT_ID as APP
from fulcrum_core.plugins import get_plugin_manager
from fulcrum_core.settings import Settings
from fulcrum_core.transactions.service import TransactionService
from fulcrum_sdk.context import PluginContext
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.models import (
    Action,
    LocalizedText,
    SlotOffer,
    TransactionRequest,
    TransactionResult,
    TransactionType,
)
from fulcrum_sdk.testing import PERSONAS

CUSTOMER = PERSONAS["young_professional"].id


class PayParams(msgspec.Struct, frozen=True):
    """Parameters of ``views.pay``."""

    amount_fen: Annotated[int, msgspec.Meta(gt=0)]


Built = tuple[ContextFactory, TransactionService, list[PluginContext], Any]


@pytest.fixture
def build(db: Database, settings: Settings, kit: Any) -> Iterator[Callable[..., Built]]:
    """A host around one plugin whose ``execute_transaction`` records the context it was given."""
    dispatchers: list[Dispatcher] = []

    def make(**overrides: Any) -> Built:
        conf = msgspec.structs.replace(settings, **overrides) if overrides else settings
        seen: list[PluginContext] = []

        def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
            register(TransactionType(key="views.pay", name=LocalizedText(zh_CN="付款"), params=PayParams,
                                     risk_level="R1", amount_field="amount_fen"))

        def execute_transaction(ctx: PluginContext, request: TransactionRequest) -> TransactionResult:
            seen.append(ctx)
            ctx.storage.add("paid", 1)
            return TransactionResult(status="succeeded", reference=request.id)

        plugin = kit.plugin(
            "views",
            transaction_types=["views.pay"],
            register_transaction_types=register_transaction_types,
            execute_transaction=execute_transaction,
        )
        plugins = get_plugin_manager(conf, extra_plugins=[plugin], load_entry_points=False)
        provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
        dispatcher = Dispatcher(conf)
        dispatchers.append(dispatcher)
        contexts = ContextFactory(settings=conf, db=db, provider=provider, plugins=plugins)
        service = TransactionService(
            settings=conf, db=db, plugins=plugins, dispatcher=dispatcher, contexts=contexts, provider=provider
        )
        return contexts, service, seen, plugins.loaded["views"]

    yield make
    for d in dispatchers:
        d.close()


def test_the_factory_hands_out_two_views_of_one_storage(build: Callable[..., Built]) -> None:
    """One storage per plugin with the configured TTL; ``fresh=True`` is its fresh view, same cache."""
    contexts, _, _, _ = build(storage_cache_ms=250)
    cached = contexts.storage("views")
    fresh = contexts.storage("views", fresh=True)
    assert isinstance(cached, SqlPluginStorage)
    assert isinstance(fresh, SqlPluginStorage)
    assert not cached.is_fresh
    assert fresh.is_fresh
    assert fresh is cached.fresh
    assert contexts.storage("views") is cached
    assert cached.cache is not None
    assert cached.cache.ttl == 0.25
    assert contexts.storage("other") is not cached


def test_a_zero_ttl_setting_turns_the_cache_off(build: Callable[..., Built]) -> None:
    """``storage_cache_ms = 0``: no cache at all."""
    contexts, _, _, _ = build(storage_cache_ms=0)
    storage = contexts.storage("views")
    assert isinstance(storage, SqlPluginStorage)
    assert storage.cache is None


def test_display_contexts_get_the_cached_view(build: Callable[..., Built]) -> None:
    """A request's plugin context (home, search, feeds) carries the cached view."""
    contexts, _, _, plugin = build()
    ctx = contexts.for_request(CUSTOMER, request_id="r-1").for_plugin(plugin)
    assert isinstance(ctx.storage, StorageHandle)  # the view's operations, not the view itself
    assert not ctx.storage.is_fresh


def test_transactions_get_the_fresh_view_and_update_the_cache(build: Callable[..., Built]) -> None:
    """``execute_transaction`` reads fresh; its write is what the display hooks' view reads next."""
    contexts, service, seen, _ = build()
    display = contexts.storage("views")
    assert display.counter("paid") == 0  # now cached as 0
    outcome = asyncio.run(
        service.submit(CUSTOMER, "k-1", b'{"type": "views.pay", "params": {"amount_fen": 1}}',
                       client_id=APP)
    )
    assert outcome.status_code == 201
    [ctx] = seen
    assert isinstance(ctx.storage, StorageHandle)
    assert ctx.storage.is_fresh
    assert ctx.storage.plugin_id == "views"
    assert ctx.customer.id == CUSTOMER  # the rest of the context is untouched
    assert display.counter("paid") == 1


def test_async_hooks_read_storage_through_the_dispatcher(db: Database, settings: Settings, kit: Any) -> None:
    """A miss (a worker thread, resumed in a task) and a hit (inline) both reach the page; a write too."""

    async def home_slot_offers(ctx: PluginContext) -> list[SlotOffer]:
        taken = await ctx.storage.acounters(["stock", "other"])
        if await ctx.storage.aget("seen") is None:
            await ctx.storage.aput("seen", True)
        return [
            SlotOffer(
                slot="home.banner/v1",
                key=f"left-{10 - taken['stock']}",
                title=LocalizedText(zh_CN="剩余"),
                action=Action(uri="fulcrum://x"),
            )
        ]

    plugins = get_plugin_manager(
        settings,
        extra_plugins=[kit.plugin("async-home", home_slot_offers=home_slot_offers)],
        load_entry_points=False,
    )
    provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
    contexts = ContextFactory(settings=settings, db=db, provider=provider, plugins=plugins)
    contexts.storage("async-home").add("stock", 3)
    plugin = plugins.loaded["async-home"]
    dispatcher = Dispatcher(settings)

    async def page() -> Any:
        ctx = contexts.for_request(CUSTOMER, request_id="r").for_plugin(plugin)
        return await dispatcher.call_many("home_slot_offers", [(plugin, ctx)])

    try:
        for _ in range(2):  # first every read misses, then every read hits
            gathered = asyncio.run(page())
            assert gathered.degraded == []
            [offer] = gathered.results["async-home"]
            assert offer.key == "left-7"
    finally:
        dispatcher.close()
    assert SqlPluginStorage(db, "async-home").get("seen") is True
