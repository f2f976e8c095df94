"""``merchant.redeem_coupon``: claim one coupon, atomically, at most once per idempotency key.

Order of checks: the coupon exists (parameter Struct, before journaling) → its window → the
customer's city → the per-customer limit → the stock. Limit and stock are bounded storage
counters; when the stock is gone or cannot be taken the customer's counter is given back, so a
refusal or a store failure leaves no trace. A retried request with the same idempotency key gets
the first result and redeems nothing.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

import msgspec
from fulcrum_sdk import (
    LimitExceeded,
    LocalizedText,
    PluginContext,
    TransactionRefused,
    TransactionRequest,
    TransactionResult,
    TransactionType,
    hookimpl,
)
from fulcrum_sdk.errors import OutcomeUnknown
from fulcrum_sdk.idempotency import run_once
from fulcrum_sdk.localtime import local_date

from fulcrum_merchant_promo.availability import customer_city, customer_key, status, stock_key
from fulcrum_merchant_promo.catalogue import CITY_NAMES, Coupon, by_id

__all__ = ["REDEEM_COUPON", "RedeemCoupon", "execute_transaction", "register_transaction_types"]

REDEEM_COUPON = "merchant.redeem_coupon"


class RedeemCoupon(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Parameters of a redemption: which coupon."""

    coupon_id: Annotated[
        str, msgspec.Meta(min_length=1, max_length=32, description="A coupon id from the catalogue.")
    ]

    def __post_init__(self) -> None:
        if by_id(self.coupon_id) is None:
            raise ValueError(f"coupon_id: no coupon {self.coupon_id!r} in the catalogue")


@hookimpl
def register_transaction_types(register: Any) -> None:
    """Declare ``merchant.redeem_coupon``; it moves no money, so it has no amount and no risk level."""
    register(
        TransactionType(
            key=REDEEM_COUPON,
            name=LocalizedText(zh_CN="领取商户优惠券", en="Claim a merchant coupon"),
            description=LocalizedText(
                zh_CN="领取一张您所在城市的商户优惠券。", en="Claim a coupon from a merchant in your city."
            ),
            params=RedeemCoupon,
            required_scopes=frozenset({"transactions:write", "location:city"}),
            risk_level="R1",  # a free coupon: no investment product
            amount_field=None,  # claiming a coupon moves no money
        )
    )


def _refuse(code: str, zh: str, en: str, *, field: str | None = "coupon_id") -> TransactionRefused:
    return TransactionRefused(f"merchant.{code}", LocalizedText(zh_CN=zh, en=en), field=field)


def _check_window_and_city(ctx: PluginContext, coupon: Coupon) -> None:
    state = status(ctx.storage, coupon, ctx.now)
    name = coupon.headline
    if state == "not_started":
        start = local_date(coupon.valid_from).isoformat()
        raise _refuse(
            "not_started",
            f"「{name.zh_CN}」将于{start}开始领取，请届时再来。",
            f"{name.en} opens on {start}; come back then.",
        )
    if state == "expired":
        end = local_date(coupon.valid_until).isoformat()
        raise _refuse(
            "expired",
            f"「{name.zh_CN}」已于{end}过期，请看看其他本地优惠。",
            f"{name.en} expired on {end}; have a look at other local deals.",
        )
    city = customer_city(ctx)
    if city is None:
        raise _refuse(
            "city_unknown",
            "需要您授权“所在城市”后才能领取本地优惠券，请在授权管理中开启。",
            "Allow access to your city in consent settings to claim local coupons.",
            field=None,
        )
    if city.code != coupon.city:
        where = CITY_NAMES.get(coupon.city, LocalizedText(zh_CN=coupon.city))
        raise _refuse(
            "wrong_city",
            f"「{name.zh_CN}」仅限{where.zh_CN}使用，您所在城市为{city.name.zh_CN}，请选择本地优惠。",
            f"{name.en} is valid in {where.en} only and you are in {city.name.en}; pick a local deal.",
        )


def _redeem(ctx: PluginContext, request: TransactionRequest, coupon: Coupon) -> TransactionResult:
    _check_window_and_city(ctx, coupon)
    mine = customer_key(coupon, ctx.customer.id)
    try:
        taken = ctx.storage.add(mine, 1, upper=coupon.per_customer_limit)
    except LimitExceeded:
        raise _refuse(
            "limit_reached",
            f"「{coupon.headline.zh_CN}」每人限领 {coupon.per_customer_limit} 张，您已领满。",
            f"{coupon.headline.en} is limited to {coupon.per_customer_limit} per customer; "
            "you have claimed them all.",
        ) from None
    try:
        ctx.storage.add(stock_key(coupon), 1, upper=coupon.stock)
    except OutcomeUnknown:
        raise  # the coupon may have been taken: the allowance stays used, the outcome is reconciled
    except BaseException as exc:
        ctx.storage.add(mine, -1, lower=0)  # give the customer's allowance back: nothing was redeemed
        if not isinstance(exc, LimitExceeded):
            raise  # the store failed: a retry may claim the coupon
        raise _refuse(
            "sold_out",
            f"「{coupon.headline.zh_CN}」已抢完，请看看其他本地优惠。",
            f"{coupon.headline.en} is sold out; have a look at other local deals.",
        ) from None
    code = hashlib.sha256(f"{coupon.id}:{request.id}".encode()).hexdigest()[:10].upper()
    until = local_date(coupon.valid_until).isoformat()
    return TransactionResult(
        status="succeeded",
        reference=f"CL-{code}",
        message=LocalizedText(
            zh_CN=f"已领取「{coupon.headline.zh_CN}」，到店出示券码 {code}，有效期至 {until}。",
            en=f"Claimed {coupon.headline.en}: show code {code} in store, valid until {until}.",
        ),
        data={
            "coupon_id": coupon.id,
            "code": code,
            "valid_until": until,
            "left_for_you": coupon.per_customer_limit - taken,
        },
    )


@hookimpl
def execute_transaction(ctx: PluginContext, request: TransactionRequest) -> TransactionResult:
    """Redeem once per idempotency key; refusals say why and what to do instead."""
    if request.type != REDEEM_COUPON or not isinstance(request.params, RedeemCoupon):
        raise ValueError(f"merchant-promo cannot execute {request.type!r}")
    coupon = by_id(request.params.coupon_id)
    if coupon is None:  # the parameter Struct already refused unknown ids; this keeps the types honest
        raise ValueError(f"coupon_id: no coupon {request.params.coupon_id!r} in the catalogue")
    return run_once(
        ctx, request.idempotency_key, lambda: _redeem(ctx, request, coupon), code_prefix="merchant"
    )
