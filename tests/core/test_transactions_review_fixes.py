"""Fail-closed rules in the transaction pipeline, found in review: limits, risk rating, kill switch."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import pytest
from fulcrum_core.errors import Unprocessable
from fulcrum_core.transactions import checks
from fulcrum_sdk.errors import TransactionRefused
from fulcrum_sdk.models import LocalizedText, TransactionType


class _FloatAmount(msgspec.Struct):
    amount_fen: float


class _NoAmount(msgspec.Struct):
    coupon_id: str


class _MaybeAmount(msgspec.Struct):
    amount_fen: int | None = None


class _Order(msgspec.Struct):
    product: str


class _Coupon(msgspec.Struct):
    coupon_id: Annotated[str, msgspec.Meta(pattern=r"^C-[0-9]{6}(?!\n)$", description="a coupon, C-000123")]


class _CamelOrder(msgspec.Struct, rename="camel"):
    """Parameters a client sends in camelCase (``productId``, ``amountFen``)."""

    product_id: str
    amount_fen: Any = None


def _type(params: type[msgspec.Struct], **kw: Any) -> TransactionType:
    kw.setdefault("amount_field", "amount_fen")
    if "product_risks" not in kw:
        kw.setdefault("risk_level", "R1")
    return TransactionType(key="t.x", name=LocalizedText(zh_CN="x"), params=params, **kw)


def test_an_amount_that_is_not_whole_fen_is_refused_not_waved_through() -> None:
    """A params Struct whose amount is a float cannot skip the platform limit: 422 naming the field."""
    with pytest.raises(Unprocessable) as refused:
        checks.amount_of(_type(_FloatAmount), _FloatAmount(amount_fen=1e12))
    assert (refused.value.code, refused.value.field) == ("limits.amount_not_fen", "params.amount_fen")


def test_a_type_stating_it_moves_no_money_has_no_amount() -> None:
    """A type stating ``amount_field=None`` (a coupon) has no amount to limit."""
    assert checks.amount_of(_type(_NoAmount, amount_field=None), _NoAmount(coupon_id="c")) is None


def test_a_money_type_sent_no_amount_is_refused_not_waved_through() -> None:
    """A type that moves money and is sent none in its amount field cannot skip the limit: 422."""
    with pytest.raises(Unprocessable) as refused:
        checks.amount_of(_type(_MaybeAmount), _MaybeAmount())
    assert (refused.value.code, refused.value.field) == ("limits.amount_not_fen", "params.amount_fen")
    assert "amount_fen is required" in refused.value.detail


def test_a_product_without_a_declared_level_is_not_sold() -> None:
    """A product the type's ``product_risks`` does not rate is refused (422 naming the parameter) before
    any plugin code runs, whatever ``risk_of`` would say."""
    from fulcrum_core.transactions.service import TransactionService

    asked: list[Any] = []
    tx = _type(_Order, product_field="product", product_risks={"OK": "R2"}, risk_of=asked.append)
    with pytest.raises(Unprocessable) as refused:
        TransactionService._risk_of("p", tx, _Order(product="NEW"))
    assert (refused.value.code, refused.value.field) == ("suitability.product_unrated", "params.product")
    assert "'NEW' has no declared risk level" in refused.value.detail
    assert asked == []
    declared = _type(_Order, product_field="product", product_risks={"OK": "R2"})
    assert TransactionService._risk_of("p", declared, _Order(product="OK")) == "R2"


@pytest.mark.parametrize("answer", [None, "R1", "R9"])
def test_risk_of_disagreeing_with_the_declared_level_is_a_plugin_fault(answer: Any) -> None:
    """``risk_of`` answering no level, a lower one or garbage for a declared product: the plugin's fault
    (502), never a product sold unchecked or below its approved level."""
    from fulcrum_core.transactions.checks import PluginFaultError
    from fulcrum_core.transactions.service import TransactionService

    tx = _type(_Order, product_field="product", product_risks={"OK": "R3"}, risk_of=lambda _p: answer)
    with pytest.raises(PluginFaultError, match="could not rate the product risk"):
        TransactionService._risk_of("p", tx, _Order(product="OK"))


def test_a_type_stating_no_level_is_never_rated() -> None:
    """Should a type without any level reach the pipeline, it is refused, never unchecked."""
    from fulcrum_core.transactions.checks import PluginFaultError
    from fulcrum_core.transactions.service import TransactionService

    tx = TransactionType(key="t.x", name=LocalizedText(zh_CN="x"), params=_NoAmount, amount_field=None)
    with pytest.raises(PluginFaultError):
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


@pytest.mark.parametrize("code", ["shop declined", "shop.\u202edeclined"])
def test_a_refusal_whose_code_is_no_key_is_the_plugins_fault_said_in_words(code: str) -> None:
    """A refusal's code that is no machine key is a 502 naming the plugin, the field, what a code is made
    of and the code given, escaped; it said msgspec's regular expression."""
    fault = checks.refusal(TransactionRefused(code, LocalizedText(zh_CN="不行")), plugin_id="shop")
    assert isinstance(fault, checks.PluginFaultError)
    assert (fault.status, fault.code) == (502, "transaction.plugin_error")
    assert fault.detail == (
        "plugin 'shop' refused invalidly: execute_transaction result is invalid: code: must be 1 to 128 "
        "ASCII letters, digits and '.', '_', ':' or '-', starting with a letter or digit, such as "
        f"pension.annual_cap_exceeded; it is {code!r}"
    )


def test_a_parameter_failing_the_plugins_pattern_is_refused_in_its_fields_words() -> None:
    """A client's parameter that fails a pattern the plugin declared: 422 naming ``params.<field>`` and
    what it must be, in the words the field's description gives; it quoted the regular expression."""
    with pytest.raises(Unprocessable) as refused:
        checks.decode_params(_type(_Coupon, amount_field=None), {"coupon_id": "c-1"}, plugin_id="shop")
    assert (refused.value.code, refused.value.field) == ("transaction.invalid_params", "params.coupon_id")
    said = "invalid parameters for t.x: params.coupon_id: must be a coupon, C-000123"
    assert refused.value.detail == said


def test_the_hosts_own_refusals_name_a_renamed_parameter_as_the_client_sent_it() -> None:
    """A params Struct that renames its fields (``rename="camel"``): the limits and the product rating
    name ``params.amountFen`` and ``params.productId``, the members the client sent, not the Struct's
    attribute names, which the client never saw (decoding errors named them as sent already)."""
    from fulcrum_core.transactions.service import TransactionService

    tx = _type(_CamelOrder, product_field="product_id", product_risks={"OK": "R2"})
    fields = []
    for refuse in (
        lambda: checks.amount_of(tx, _CamelOrder(product_id="OK", amount_fen=1.5)),
        lambda: checks.check_amount(tx, -1, 100),
        lambda: checks.check_amount(tx, 101, 100),
        lambda: TransactionService._risk_of("p", tx, _CamelOrder(product_id="NEW", amount_fen=1)),
    ):
        with pytest.raises(Unprocessable) as refused:
            refuse()
        fields.append(refused.value.field)
    assert fields == ["params.amountFen"] * 3 + ["params.productId"]
