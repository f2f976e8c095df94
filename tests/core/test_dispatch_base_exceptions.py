"""A plugin raising a ``BaseException`` that is not an ``Exception`` (``SystemExit``, ``GeneratorExit``,
``KeyboardInterrupt``, its own subclass) is that plugin's error on every path, through the real app: the
page still answers 200 with it degraded and its breaker charged, a transaction answers 502
``transaction.plugin_error``. A ``KeyboardInterrupt`` too, even on the event loop's own thread: the server
handles SIGINT itself, so none raised there is a real one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_sdk import nonblocking
from fulcrum_sdk.models import LocalizedText, TransactionRequest, TransactionType
from fulcrum_sdk.testing import PERSONAS

C3 = PERSONAS["young_professional"].id


class PluginBail(BaseException):
    """A plugin's own BaseException subclass."""


RAISED: list[Callable[[], BaseException]] = [
    lambda: SystemExit(3),
    lambda: PluginBail("bail"),
    lambda: GeneratorExit(),
    lambda: KeyboardInterrupt(),
]
IDS = ["SystemExit", "own-BaseException", "GeneratorExit", "KeyboardInterrupt"]


def _impls(make: Callable[[], BaseException]) -> dict[str, Callable[..., Any]]:
    """One hookimpl per way the host calls a plugin, each raising ``make()``."""

    async def first_step(*args: Any) -> Any:
        raise make()

    async def after_waiting(*args: Any) -> Any:
        await asyncio.sleep(0.001)
        raise make()

    @nonblocking
    def inline(*args: Any) -> Any:
        raise make()

    def threaded(*args: Any) -> Any:
        raise make()

    return {"first-step": first_step, "after-waiting": after_waiting, "inline": inline, "thread": threaded}


@pytest.mark.parametrize("make", RAISED, ids=IDS)
def test_home_degrades_only_the_plugin_that_raised(
    make: Callable[[], BaseException], make_app: Any, kit: Any
) -> None:
    """``/v1/home`` is 200 with each raiser ``error`` (named in the detail), its breaker charged."""
    impls = _impls(make)
    app = make_app(
        kit.plugin("good", home_slot_offers=nonblocking(lambda ctx: [kit.offer("home.banner", "b1")])),
        *(kit.plugin(name, home_slot_offers=impl) for name, impl in impls.items()),
    )
    response = app.get("/v1/home")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [(i["plugin"], i["key"]) for i in body["slots"]["home.banner/v1"]] == [("good", "b1")]
    assert {d["plugin"]: d["reason"] for d in body["degraded"]} == dict.fromkeys(impls, "error")
    stats = {s.plugin: s for s in app.runtime.dispatcher.stats.snapshot()}
    assert all(stats[p].error == 1 for p in impls)
    name = type(make()).__name__  # the plugin's own exception is named, not a wrapper of it
    assert all((stats[p].last_problem or "").startswith(f"error: {name}") for p in impls), stats
    # The worker is still serving: a second request is answered the same way.
    assert app.get("/v1/home").status_code == 200


@pytest.mark.parametrize("make", RAISED, ids=IDS)
def test_search_degrades_only_the_plugin_that_raised(
    make: Callable[[], BaseException], make_app: Any, kit: Any
) -> None:
    """``/v1/search`` too (a hook with an argument besides ``ctx``)."""
    impls = _impls(make)
    app = make_app(*(kit.plugin(name, search=impl) for name, impl in impls.items()))
    response = app.get("/v1/search", params={"q": "fund"})
    assert response.status_code == 200, response.text
    assert {d["plugin"]: d["reason"] for d in response.json()["degraded"]} == dict.fromkeys(impls, "error")


class _Params(msgspec.Struct, frozen=True):
    amount_fen: int
    product: str = "P1"


def _tx_plugin(kit: Any, execute: Callable[..., Any], **hooks: Any) -> Any:
    per_product = {"product_field": "product", "product_risks": {"P1": "R1"}}
    risk: dict[str, Any] = per_product if "risk_of" in hooks else {"risk_level": "R1"}

    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(
            TransactionType(
                key="x.pay",
                name=LocalizedText(zh_CN="付款"),
                description=LocalizedText(zh_CN="付款"),
                params=_Params,
                amount_field="amount_fen",
                **risk,
                **hooks,
            )
        )

    return kit.plugin(
        "payer",
        transaction_types=["x.pay"],
        register_transaction_types=register_transaction_types,
        execute_transaction=execute,
    )


def _post(app: Any, key: str = "k-1") -> Any:
    return app.client.post(
        "/v1/transactions",
        content=msgspec.json.encode({"type": "x.pay", "params": {"amount_fen": 100}}),
        headers={
            "Authorization": f"Bearer {app.token(C3)}",
            "Idempotency-Key": key,
            "Content-Type": "application/json",
        },
    )


def _post_left_unknown(app: Any) -> None:
    """Submit the transaction whose plugin answers it badly at execution: 202 ``unknown``, and the
    journal row says so (reconciliation asks again; never a 500, never a row left pending)."""
    response = _post(app)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "unknown"
    row = app.runtime.transactions.journal.find(C3, "fulcrum-dev", "k-1")
    assert row is not None
    assert row.status == "unknown"


@pytest.mark.parametrize("path", ["first-step", "after-waiting", "inline", "thread"])
@pytest.mark.parametrize("make", RAISED, ids=IDS)
def test_transaction_is_a_plugin_error(
    make: Callable[[], BaseException], path: str, make_app: Any, kit: Any
) -> None:
    """``execute_transaction`` raising it: 502 ``transaction.plugin_error``, journaled failed (not a
    500, no pending row left behind)."""
    app = make_app(_tx_plugin(kit, _impls(make)[path]))
    response = _post(app)
    assert response.status_code == 502, response.text
    problem = response.json()
    assert problem["code"] == "transaction.plugin_error"
    assert problem["transaction"]["status"] == "failed"
    assert _post(app).content == response.content  # journaled: replayed as it was
    stats = {s.plugin: s for s in app.runtime.dispatcher.stats.snapshot()}
    assert stats["payer"].error == 1


@pytest.mark.parametrize("make", RAISED, ids=IDS)
def test_risk_of_raising_it_is_a_plugin_fault(
    make: Callable[[], BaseException], make_app: Any, kit: Any
) -> None:
    """Plugin code run while the request is checked (``risk_of``) raising it: 502, nothing journaled."""

    def risk_of(params: Any) -> Any:
        raise make()

    def execute(ctx: Any, request: TransactionRequest) -> Any:  # pragma: no cover - never reached
        raise AssertionError("executed")

    app = make_app(_tx_plugin(kit, execute, risk_of=risk_of))
    response = _post(app)
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "transaction.plugin_error"
    assert app.runtime.transactions.journal.find(C3, "fulcrum-dev", "k-1") is None


@pytest.mark.anyio
async def test_keyboard_interrupt_from_the_event_loops_own_thread_is_the_plugins_error(
    settings: Any, kit: Any
) -> None:
    """``KeyboardInterrupt`` raised on the event loop's thread, in the request's own task (a ``@nonblocking``
    function, a coroutine's first step), was raised on as if it were a real one: the request answered
    500 and the plugin was not charged. Under the server no real interrupt arrives there (it handles
    SIGINT itself), so it is the plugin's own raise: its error, its breaker charged, as out of a worker
    thread or its own task (``test_chaos_review.py``)."""
    from fulcrum_core.plugins import get_plugin_manager

    dispatcher = Dispatcher(settings)
    try:
        for name, impl in _impls(KeyboardInterrupt).items():
            if name in ("after-waiting", "thread"):
                continue
            loaded = get_plugin_manager(
                settings, extra_plugins=[kit.plugin(name, home_slot_offers=impl)], load_entry_points=False
            )
            calls = [(p, kit.context(p)) for p in loaded.loaded.values()]
            gathered = await dispatcher.call_many("home_slot_offers", calls)
            assert [(d.plugin, d.reason) for d in gathered.degraded] == [(name, "error")]
            assert gathered.degraded[0].detail.startswith("KeyboardInterrupt")
            [stats] = [s for s in dispatcher.stats.snapshot() if s.plugin == name]
            assert stats.error == 1
    finally:
        dispatcher.close()


@pytest.mark.parametrize("make", RAISED, ids=IDS)
def test_params_post_init_raising_it_is_a_plugin_fault(
    make: Callable[[], BaseException], make_app: Any, kit: Any
) -> None:
    """The plugin's params ``__post_init__`` raising it while the request is checked: 502, nothing
    journaled."""

    class Params(msgspec.Struct, frozen=True):
        amount_fen: int

        def __post_init__(self) -> None:
            raise make()

    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(key="x.pay", name=LocalizedText(zh_CN="付款"), params=Params,
                                 risk_level="R1", amount_field="amount_fen"))

    def execute(ctx: Any, request: TransactionRequest) -> Any:  # pragma: no cover - never reached
        raise AssertionError("executed")

    app = make_app(kit.plugin(
        "payer", transaction_types=["x.pay"], register_transaction_types=register_transaction_types,
        execute_transaction=execute,
    ))
    response = _post(app)
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "transaction.plugin_error"
    assert app.runtime.transactions.journal.find(C3, "fulcrum-dev", "k-1") is None
