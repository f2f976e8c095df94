"""``wealth.rebalance_order``: parameter rules, suitability, sale windows and idempotency."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from fulcrum_sdk import ScopeDenied, TransactionRefused
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PluginHarness
from fulcrum_wealth_checkup.catalogue import products
from fulcrum_wealth_checkup.rebalance import REBALANCE_ORDER

MakeHarness = Callable[..., PluginHarness]


def _order(harness: PluginHarness, key: str | None = None, *, host_checks: bool = True, **params: Any) -> Any:
    return harness.execute(REBALANCE_ORDER, params, idempotency_key=key, host_checks=host_checks)


def test_an_order_for_a_suitable_product_succeeds(make_harness: MakeHarness) -> None:
    """A C2 customer buys an R2 product; the result says what was bought, in fen."""
    result = _order(make_harness("young_family"), product_id="WM-FIX-30", amount_fen=100_000)
    assert result.status == "succeeded"
    assert result.data == {
        "product_id": "WM-FIX-30",
        "amount_fen": 100_000,
        "asset_class": "preservation",
        "risk_level": "R2",
    }
    assert result.message is not None
    assert "¥1,000.00" in result.message.zh_CN


def test_the_product_risk_level_is_declared_for_the_host(make_harness: MakeHarness) -> None:
    """Every listed product's level is declared (and in the manifest, for review), so the host rates
    each order itself; ``risk_of`` agrees with it for every listed product."""
    harness = make_harness()
    tx_type = harness.transaction_types()[REBALANCE_ORDER]
    order = msgspec.convert({"product_id": "WM-IDX-300", "amount_fen": 10_000}, tx_type.params)
    assert tx_type.risk_of is not None
    assert tx_type.risk_of(order) == tx_type.product_risks["WM-IDX-300"] == "R4"
    assert tx_type.risk_level is None
    assert (tx_type.product_field, tx_type.amount_field) == ("product_id", "amount_fen")
    declared = harness.manifest.declaration(REBALANCE_ORDER)
    assert declared is not None
    assert declared.product_risks == dict(tx_type.product_risks)
    assert set(tx_type.product_risks) == set(products())


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"product_id": "WM-FIX-30", "amount_fen": 99}, "amount_fen"),  # below the ¥1.00 minimum
        ({"product_id": "WM-FIX-30", "amount_fen": 150}, "amount_fen"),  # not a ¥1.00 step above the minimum
        ({"product_id": "WM-PROT-01", "amount_fen": 15_000}, "amount_fen"),  # ¥100 steps
        ({"product_id": "WM-FIX-30", "amount_fen": 0}, "amount_fen"),
        ({"product_id": "WM-FIX-30", "amount_fen": -100}, "amount_fen"),
        ({"product_id": "WM-FIX-30", "amount_fen": 100.5}, "amount_fen"),
        ({"product_id": "WM-FIX-30", "amount_fen": "100"}, "amount_fen"),
        ({"product_id": "WM-FIX-30", "amount_fen": True}, "amount_fen"),
        ({"product_id": "WM-FIX-30"}, "amount_fen"),
        ({"product_id": "NOPE", "amount_fen": 100}, "product_id"),
        ({"product_id": "", "amount_fen": 100}, "product_id"),
        ({"amount_fen": 100}, "product_id"),
        ({"product_id": "WM-FIX-30", "amount_fen": 100, "note": "x"}, "note"),
    ],
)
def test_bad_parameters_are_rejected_naming_the_field(
    make_harness: MakeHarness, params: dict[str, Any], field: str
) -> None:
    """Parameter rules run before execution and the error names the offending field."""
    with pytest.raises(msgspec.ValidationError, match=field):
        _order(make_harness("young_family"), **params)


def test_minimum_purchase_message_gives_the_amount(make_harness: MakeHarness) -> None:
    """The minimum purchase error says the minimum in yuan."""
    with pytest.raises(msgspec.ValidationError, match=r"minimum purchase of WM-FIX-365 is ¥10,000\.00"):
        _order(make_harness(), product_id="WM-FIX-365", amount_fen=999_999)


def test_exact_minimum_and_steps_are_accepted(make_harness: MakeHarness) -> None:
    """The minimum itself and the minimum plus whole steps are valid amounts."""
    harness = make_harness("young_family")
    for amount in (10_000, 20_000, 1_000_000):
        assert _order(harness, product_id="WM-PROT-01", amount_fen=amount).status == "succeeded"


def test_a_closed_product_is_refused(make_harness: MakeHarness) -> None:
    """A product whose sale window ended is refused at execution, naming the product field."""
    with pytest.raises(TransactionRefused) as refused:
        _order(make_harness("affluent"), product_id="WM-FIX-365", amount_fen=1_000_000)
    assert (refused.value.code, refused.value.field) == ("wealth.product_closed", "product_id")
    assert "2025-12-31" in refused.value.message.zh_CN
    assert refused.value.message.en == (
        "Steady One-year Product stopped selling on 2025-12-31; choose another listed product."
    )


def test_an_expired_assessment_blocks_risky_products(make_harness: MakeHarness) -> None:
    """The retiree's assessment expired: the host refuses an R2 purchase before the plugin is asked,
    and the plugin refuses it too, with advice to retake it."""
    with pytest.raises(TransactionRefused) as refused:
        _order(make_harness("retiree"), product_id="WM-FIX-30", amount_fen=100)
    assert refused.value.code == "suitability.assessment_expired"
    with pytest.raises(TransactionRefused) as refused:
        _order(make_harness("retiree"), product_id="WM-FIX-30", amount_fen=100, host_checks=False)
    assert refused.value.code == "wealth.risk_assessment_required"


def test_an_expired_assessment_still_allows_r1(make_harness: MakeHarness) -> None:
    """R1 products need no valid assessment."""
    assert _order(make_harness("retiree"), product_id="WM-CASH-01", amount_fen=100).status == "succeeded"


def test_an_unsuitable_product_is_refused_even_past_the_host(make_harness: MakeHarness) -> None:
    """Defence in depth: an R4 product for a C3 customer, which the host refuses first, is refused by
    the plugin too."""
    harness = make_harness("young_professional")
    with pytest.raises(TransactionRefused) as refused:
        _order(harness, product_id="WM-IDX-300", amount_fen=10_000, host_checks=False)
    assert (refused.value.code, refused.value.field) == ("wealth.unsuitable", "product_id")


def test_a_retried_order_is_placed_once(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """The same idempotency key returns the first result; a new key places a new order."""
    harness = make_harness("young_family")
    first = _order(harness, "key-1", product_id="WM-FIX-30", amount_fen=100)
    again = _order(harness, "key-1", product_id="WM-FIX-30", amount_fen=100)
    other = _order(harness, "key-2", product_id="WM-FIX-30", amount_fen=100)
    assert again == first
    assert other.reference != first.reference


def test_a_refused_order_can_be_retried(make_harness: MakeHarness) -> None:
    """A refusal stores nothing, so the same key is judged afresh (and refused again here)."""
    harness = make_harness("retiree")
    for _ in range(2):
        with pytest.raises(TransactionRefused, match="risk_assessment_required"):
            _order(harness, "same", product_id="WM-FIX-30", amount_fen=100, host_checks=False)


def test_an_order_in_flight_is_not_run_twice(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """A claimed key without a stored result (still running, or interrupted) is refused, not re-run."""
    harness = make_harness("young_family")
    digest = hashlib.sha256(f"{harness.record.id}\x00k".encode()).hexdigest()
    storage.add(f"tx-claim:{digest}", 1)  # another worker holds the key and has not stored a result yet
    with pytest.raises(TransactionRefused, match="request_in_progress"):
        _order(harness, "k", product_id="WM-FIX-30", amount_fen=100)


def test_orders_need_the_transaction_scope(make_harness: MakeHarness) -> None:
    """Without ``transactions:write`` the order is denied before it reaches the plugin."""
    with pytest.raises(ScopeDenied, match="transactions:write"):
        _order(make_harness(scopes={"profile:risk", "holdings:read"}), product_id="WM-FIX-30", amount_fen=100)
