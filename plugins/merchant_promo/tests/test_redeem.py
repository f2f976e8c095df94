"""``merchant.redeem_coupon``: stock, windows, per-customer limits, cities and idempotent retries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from fulcrum_merchant_promo.catalogue import by_id
from fulcrum_merchant_promo.redeem import REDEEM_COUPON
from fulcrum_sdk import TransactionRefused, TransactionResult
from fulcrum_sdk.data import CustomerRecord
from fulcrum_sdk.errors import OutcomeUnknown, StorageOutcomeUnknown, StorageUnavailable
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PERSONAS, PluginHarness

MakeHarness = Callable[..., PluginHarness]


def _redeem(harness: PluginHarness, coupon_id: Any, key: str | None = None) -> TransactionResult:
    return harness.execute(REDEEM_COUPON, {"coupon_id": coupon_id}, idempotency_key=key)


def _chengdu_customer(n: int) -> CustomerRecord:
    return msgspec.structs.replace(PERSONAS["retiree"], id=f"chengdu-{n}")


def _code(exc: pytest.ExceptionInfo[TransactionRefused]) -> str:
    return exc.value.code


def test_a_redemption_returns_a_code_and_takes_stock(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """Redeeming gives a store code, tells how many remain for the customer, and takes one from stock."""
    result = _redeem(make_harness(), "SZ-TEA-10")
    assert result.status == "succeeded"
    assert result.data["coupon_id"] == "SZ-TEA-10"
    assert result.data["left_for_you"] == 1
    assert result.reference == f"CL-{result.data['code']}"
    assert storage.counter("stock-taken:SZ-TEA-10") == 1


def test_the_last_coupon_goes_then_it_is_sold_out(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """Three customers take the three hotpot coupons; the fourth is told it is sold out, allowance intact."""
    for n in range(3):
        _redeem(make_harness(_chengdu_customer(n)), "CD-HOTPOT-50")
    fourth = make_harness(_chengdu_customer(3))
    with pytest.raises(TransactionRefused) as refused:
        _redeem(fourth, "CD-HOTPOT-50")
    assert (_code(refused), refused.value.field) == ("merchant.sold_out", "coupon_id")
    assert storage.counter("stock-taken:CD-HOTPOT-50") == 3
    assert storage.counter(f"redeemed:CD-HOTPOT-50:{fourth.context().customer.id}") == 0


def test_over_the_per_customer_limit_is_refused(make_harness: MakeHarness) -> None:
    """The roast coupon is one per customer: the second claim is refused, naming the limit."""
    harness = make_harness()
    _redeem(harness, "SZ-ROAST-30")
    with pytest.raises(TransactionRefused) as refused:
        _redeem(harness, "SZ-ROAST-30")
    assert _code(refused) == "merchant.limit_reached"
    assert "每人限领 1 张" in refused.value.message.zh_CN


def test_the_limit_counts_exactly(make_harness: MakeHarness) -> None:
    """A limit of two allows exactly two."""
    harness = make_harness()
    assert [_redeem(harness, "SZ-TEA-10").data["left_for_you"] for _ in range(2)] == [1, 0]
    with pytest.raises(TransactionRefused, match="limit_reached"):
        _redeem(harness, "SZ-TEA-10")


def test_an_expired_coupon_is_refused(make_harness: MakeHarness) -> None:
    """The cinema coupon ended on 30 June: refused with the date, and no stock is taken."""
    with pytest.raises(TransactionRefused) as refused:
        _redeem(make_harness(), "SZ-CINEMA-15")
    assert _code(refused) == "merchant.expired"
    assert "2026-06-30" in refused.value.message.zh_CN


def test_validity_edges_are_inclusive(make_harness: MakeHarness) -> None:
    """A coupon can be claimed in the last second of its window, not one second after."""
    last_second = datetime(2026, 6, 30, 15, 59, 59, tzinfo=UTC)
    assert _redeem(make_harness(now=last_second), "SZ-CINEMA-15").status == "succeeded"
    with pytest.raises(TransactionRefused, match="expired"):
        _redeem(make_harness(now=datetime(2026, 6, 30, 16, 0, 0, tzinfo=UTC)), "SZ-CINEMA-15")


def test_a_coupon_not_yet_open_is_refused(make_harness: MakeHarness) -> None:
    """The panda coupon opens on 1 January 2027: refused before, with the opening date."""
    with pytest.raises(TransactionRefused) as refused:
        _redeem(make_harness("retiree"), "CD-PANDA-20")
    assert _code(refused) == "merchant.not_started"
    assert "2027-01-01" in refused.value.message.zh_CN


def test_a_coupon_from_another_city_is_refused(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """A Shanghai customer cannot claim a Shenzhen coupon; the message names both cities."""
    with pytest.raises(TransactionRefused) as refused:
        _redeem(make_harness("young_family"), "SZ-TEA-10")
    assert _code(refused) == "merchant.wrong_city"
    assert "深圳" in refused.value.message.zh_CN
    assert "上海" in refused.value.message.zh_CN
    assert storage.counter("stock-taken:SZ-TEA-10") == 0


def test_a_retried_request_never_redeems_twice(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """The same idempotency key returns the first code and takes stock once (a one-per-customer coupon)."""
    harness = make_harness()
    first = _redeem(harness, "SZ-ROAST-30", key="retry-me")
    assert _redeem(harness, "SZ-ROAST-30", key="retry-me") == first
    assert storage.counter("stock-taken:SZ-ROAST-30") == 1


@pytest.mark.parametrize("coupon_id", ["XX-NOPE", "", 42, None, "A" * 33])
def test_bad_coupon_ids_are_rejected_naming_the_field(make_harness: MakeHarness, coupon_id: Any) -> None:
    """Unknown, empty, over-long or non-string ids fail parameter validation naming ``coupon_id``."""
    with pytest.raises(msgspec.ValidationError, match="coupon_id"):
        _redeem(make_harness(), coupon_id)


def test_unknown_parameters_are_rejected(make_harness: MakeHarness) -> None:
    """Only ``coupon_id`` is accepted."""
    with pytest.raises(msgspec.ValidationError, match="quantity"):
        make_harness().execute(REDEEM_COUPON, {"coupon_id": "SZ-TEA-10", "quantity": 2})


def test_the_type_moves_no_money(make_harness: MakeHarness) -> None:
    """Redemption states that it moves no money and is rated R1 (a free coupon), as its manifest
    declares, and needs the city."""
    harness = make_harness()
    tx_type = harness.transaction_types()[REDEEM_COUPON]
    assert tx_type.amount_field is None
    assert tx_type.risk_level == "R1"
    assert tx_type.risk_of is None
    declared = harness.manifest.declaration(REDEEM_COUPON)
    assert declared is not None
    assert (declared.risk_level, declared.moves_money, declared.amount_field) == ("R1", False, None)
    assert "location:city" in tx_type.required_scopes


def test_concurrent_claims_never_oversell(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """Ten customers race for three coupons: exactly three succeed and the stock counter stops at three."""
    harnesses = [make_harness(_chengdu_customer(n)) for n in range(10)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def claim(harness: PluginHarness) -> None:
        try:
            _redeem(harness, "CD-HOTPOT-50")
            outcome = "ok"
        except TransactionRefused as exc:
            outcome = exc.code
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=claim, args=(h,)) for h in harnesses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["merchant.sold_out"] * 7 + ["ok"] * 3
    coupon = by_id("CD-HOTPOT-50")
    assert coupon is not None
    assert storage.counter("stock-taken:CD-HOTPOT-50") == coupon.stock


def test_a_store_failure_taking_stock_gives_the_allowance_back(make_harness: MakeHarness) -> None:
    """The stock cannot be taken (the store is unavailable): nothing was redeemed, so the customer's
    allowance is given back and a retry can claim the coupon, instead of counting a claim never made."""

    class FlakyStock(MemoryStorage):
        def add(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
            if key.startswith("stock-taken:") and not getattr(self, "healed", False):
                raise StorageUnavailable("plugin storage is unavailable; retry later")
            return super().add(key, delta, lower=lower, upper=upper)

    storage = FlakyStock()
    harness = make_harness(storage=storage)
    with pytest.raises(StorageUnavailable):
        _redeem(harness, "SZ-ROAST-30", key="k-1")
    assert storage.counter(f"redeemed:SZ-ROAST-30:{harness.context().customer.id}") == 0
    storage.healed = True  # type: ignore[attr-defined]
    assert _redeem(harness, "SZ-ROAST-30", key="k-1").status == "succeeded"


def test_a_stock_taking_whose_commit_went_unacknowledged_keeps_the_allowance_used(
    make_harness: MakeHarness,
) -> None:
    """The stock's write may have been applied (its commit was not acknowledged): the coupon may be
    the customer's, so the allowance stays used, the outcome is unknown for the host to reconcile, and
    the same key is refused as in progress rather than taking a second coupon."""

    class LostAnswer(MemoryStorage):
        def add(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
            value = super().add(key, delta, lower=lower, upper=upper)
            if key.startswith("stock-taken:"):
                raise StorageOutcomeUnknown("the write's commit was not acknowledged")
            return value

    storage = LostAnswer()
    harness = make_harness(storage=storage)
    with pytest.raises(OutcomeUnknown):
        _redeem(harness, "SZ-ROAST-30", key="k-1")
    assert storage.counter(f"redeemed:SZ-ROAST-30:{harness.context().customer.id}") == 1
    assert storage.counter("stock-taken:SZ-ROAST-30") == 1
    with pytest.raises(TransactionRefused) as again:
        _redeem(harness, "SZ-ROAST-30", key="k-1")
    assert _code(again) == "merchant.request_in_progress"
