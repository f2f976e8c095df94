{%- set c = cookiecutter -%}
"""Orders: valid ones succeed once, bad parameters are rejected, stock and scopes are enforced."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from fulcrum_sdk import ScopeDenied, TransactionRefused
from fulcrum_sdk.errors import OutcomeUnknown
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PluginHarness

import {{ c.__package }} as plugin
from {{ c.__package }}._about import PLUGIN_ID
from {{ c.__package }}.orders import TRANSACTION_TYPE, OrderParams
from {{ c.__package }}.plans import PLANS

TYPE = TRANSACTION_TYPE
STARTER = PLANS["starter"]


def test_the_order_type_is_registered() -> None:
    """The plugin registers exactly its order type, with the amount field the host limits on and the
    product risk level its suitability check applies."""
    types = PluginHarness(plugin).transaction_types()
    assert list(types) == [TYPE]
    assert types[TYPE].amount_field == "amount_fen"
    assert types[TYPE].risk_level == "R1"
    assert types[TYPE].params is OrderParams


def test_the_order_type_is_registered_as_the_manifest_declares_it() -> None:
    """The host refuses at startup a type whose risk level or amount field differs from its
    ``[transaction_types]`` declaration in fulcrum-plugin.toml: change both together."""
    harness = PluginHarness(plugin)
    declared = harness.manifest.declaration(TYPE)
    registered = harness.transaction_types()[TYPE]
    assert declared is not None, "declare the type under [transaction_types] in fulcrum-plugin.toml"
    assert (declared.risk_level, declared.amount_field) == (registered.risk_level, registered.amount_field)


def test_a_valid_order_succeeds_and_takes_stock() -> None:
    """Ordering two starter plans succeeds and counts two sold."""
    harness = PluginHarness(plugin)
    result = harness.execute(TYPE, {"plan_id": "starter", "quantity": 2, "amount_fen": 2 * STARTER.price_fen})
    assert result.status == "succeeded"
    assert result.data == {"plan_id": "starter", "quantity": 2}
    assert harness.storage.counter("sold:starter") == 2


def test_the_same_idempotency_key_sells_once() -> None:
    """A repeated call with the same key returns the first result and takes no more stock."""
    harness = PluginHarness(plugin)
    params = {"plan_id": "starter", "amount_fen": STARTER.price_fen}
    first = harness.execute(TYPE, params, idempotency_key="key-1")
    again = harness.execute(TYPE, params, idempotency_key="key-1")
    assert again == first
    assert harness.storage.counter("sold:starter") == 1


@pytest.mark.parametrize(
    "params",
    [
        {"plan_id": "starter", "quantity": 0, "amount_fen": 0},
        {"plan_id": "starter", "quantity": 11, "amount_fen": 11 * STARTER.price_fen},
        {"plan_id": "starter", "amount_fen": STARTER.price_fen + 1},
        {"plan_id": "platinum", "amount_fen": STARTER.price_fen},
        {"plan_id": "starter", "amount_fen": float(STARTER.price_fen)},
        {"plan_id": "starter", "amount_fen": STARTER.price_fen, "discount": 100},
        {"quantity": 1},
    ],
    ids=["no-quantity", "too-many", "wrong-amount", "unknown-plan", "float-money", "extra-field", "missing"],
)
def test_bad_parameters_are_rejected(params: dict[str, Any]) -> None:
    """Parameters outside the schema fail validation before the plugin is called."""
    harness = PluginHarness(plugin)
    with pytest.raises(msgspec.ValidationError):
        harness.execute(TYPE, params)
    assert harness.storage.counter("sold:starter") == 0


def test_a_sold_out_plan_is_refused_with_a_code() -> None:
    """Ordering more than the stock left is refused, naming the quantity, and sells nothing."""
    harness = PluginHarness(plugin)
    harness.storage.add("sold:starter", STARTER.stock - 1)
    with pytest.raises(TransactionRefused) as refused:
        harness.execute(TYPE, {"plan_id": "starter", "quantity": 2, "amount_fen": 2 * STARTER.price_fen})
    assert refused.value.code == f"{PLUGIN_ID}.sold_out"
    assert refused.value.field == "quantity"
    assert harness.storage.counter("sold:starter") == STARTER.stock - 1


def test_a_refused_order_can_be_retried_with_the_same_key() -> None:
    """A refusal releases the key's claim, so the same key may succeed once stock is back."""
    storage = MemoryStorage()
    harness = PluginHarness(plugin, storage=storage)
    storage.add("sold:starter", STARTER.stock)
    params = {"plan_id": "starter", "amount_fen": STARTER.price_fen}
    with pytest.raises(TransactionRefused):
        harness.execute(TYPE, params, idempotency_key="key-2")
    storage.add("sold:starter", -1)
    assert harness.execute(TYPE, params, idempotency_key="key-2").status == "succeeded"


def test_an_order_in_flight_refuses_a_second_attempt() -> None:
    """While a key is claimed and has no stored result, a second attempt is refused, not doubled."""
    harness = PluginHarness(plugin)
    params = {"plan_id": "starter", "amount_fen": STARTER.price_fen}
    real_put = harness.storage.put

    def put_after_second_attempt(key: str, value: Any) -> None:
        # Re-enter before the first attempt stores its result, as a concurrent worker would.
        with pytest.raises(TransactionRefused) as refused:
            harness.execute(TYPE, params, idempotency_key="key-3")
        assert refused.value.code == f"{PLUGIN_ID}.request_in_progress"
        real_put(key, value)

    harness.storage.put = put_after_second_attempt  # type: ignore[method-assign]
    harness.execute(TYPE, params, idempotency_key="key-3")
    assert harness.storage.counter("sold:starter") == 1


def test_a_sale_whose_result_cannot_be_stored_is_unknown_and_never_repeated() -> None:
    """Sold but not remembered: ``OutcomeUnknown`` (the host records the order as unknown, not as
    failed), and a retry with the same key is refused as in progress instead of selling again."""
    harness = PluginHarness(plugin)
    params = {"plan_id": "starter", "amount_fen": STARTER.price_fen}

    def put_fails(key: str, value: Any) -> None:
        raise OSError("storage went away")

    harness.storage.put = put_fails  # type: ignore[method-assign]
    with pytest.raises(OutcomeUnknown):
        harness.execute(TYPE, params, idempotency_key="key-4")
    with pytest.raises(TransactionRefused) as refused:
        harness.execute(TYPE, params, idempotency_key="key-4")
    assert refused.value.code == f"{PLUGIN_ID}.request_in_progress"
    assert harness.storage.counter("sold:starter") == 1


def test_orders_need_the_transactions_scope() -> None:
    """Without ``transactions:write`` the order is denied before the plugin runs."""
    harness = PluginHarness(plugin, scopes=())
    with pytest.raises(ScopeDenied):
        harness.execute(TYPE, {"plan_id": "starter", "amount_fen": STARTER.price_fen})



def test_a_wrong_amount_names_its_field() -> None:
    """The message starts with the field's name, so the host's 422 names ``params.amount_fen``."""
    harness = PluginHarness(plugin)
    with pytest.raises(msgspec.ValidationError, match=r"^amount_fen: must be "):
        harness.execute(TYPE, {"plan_id": "starter", "amount_fen": STARTER.price_fen + 1})
