"""Fail-closed rules in the transaction pipeline, found in review: limits, risk rating, kill switch."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from fulcrum_core.errors import Unprocessable
from fulcrum_core.transactions import checks
from fulcrum_sdk.models import LocalizedText, TransactionType


class _FloatAmount(msgspec.Struct):
    amount_fen: float


class _NoAmount(msgspec.Struct):
    coupon_id: str


def _type(params: type[msgspec.Struct], **kw: Any) -> TransactionType:
    return TransactionType(key="t.x", name=LocalizedText(zh_CN="x"), params=params, **kw)


def test_an_amount_that_is_not_whole_fen_is_refused_not_waved_through() -> None:
    """A params Struct whose amount is a float cannot skip the platform limit: 422 naming the field."""
    with pytest.raises(Unprocessable) as refused:
        checks.amount_of(_type(_FloatAmount), _FloatAmount(amount_fen=1e12))
    assert (refused.value.code, refused.value.field) == ("limits.amount_not_fen", "params.amount_fen")


def test_a_type_without_an_amount_has_none() -> None:
    """A type whose params carry no amount (a coupon) has no amount to limit."""
    assert checks.amount_of(_type(_NoAmount), _NoAmount(coupon_id="c")) is None


def test_risk_of_returning_none_falls_back_to_the_declared_level() -> None:
    """``risk_of`` → None with a declared ``risk_level`` keeps that level: suitability still applies."""
    from fulcrum_core.transactions.service import TransactionService

    tx = _type(_NoAmount, risk_level="R5", risk_of=lambda _p: None)
    assert TransactionService._risk_of("p", tx, _NoAmount(coupon_id="c")) == "R5"


def test_risk_of_returning_none_with_no_declared_level_is_a_plugin_fault() -> None:
    """A type that rates its products but rates this one as nothing is refused, never unchecked."""
    from fulcrum_core.transactions.service import TransactionService

    tx = _type(_NoAmount, risk_of=lambda _p: None)
    with pytest.raises(Exception, match="could not rate the product risk"):
        TransactionService._risk_of("p", tx, _NoAmount(coupon_id="c"))


def test_a_truthy_but_not_true_public_flag_is_refused_at_build() -> None:
    """``opt={"public": 1}`` would skip authentication; create_app refuses to build such an app."""
    from fulcrum_core.app import _refuse_loose_public_flags
    from litestar import Litestar, get

    @get("/loose", opt={"public": 1}, sync_to_thread=False)
    def loose() -> str:
        return "x"

    with pytest.raises(ValueError, match="must be True or absent"):
        _refuse_loose_public_flags(Litestar([loose]))
