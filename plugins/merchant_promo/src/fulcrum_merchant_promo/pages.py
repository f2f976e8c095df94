"""The coupon page (``fulcrum://merchant-promo/coupons/<id>``, what banners, hits and cards open): the
coupon's terms, how many are left, and whether this customer can claim it now and, if not, why.

The terms need no customer data; whether the coupon is for the customer's city needs
``location:city`` with consent, and without it the page says so instead of guessing.
"""

from __future__ import annotations

from fulcrum_sdk import LocalizedText, Page, PageLine, PageSection, PluginContext, hookimpl
from fulcrum_sdk.localtime import local_date

from fulcrum_merchant_promo.availability import customer_city, customer_key, stock_key, window
from fulcrum_merchant_promo.catalogue import CITY_NAMES, Coupon, by_id

__all__ = ["coupon_page", "page"]

T = LocalizedText


def _verdict(ctx: PluginContext, coupon: Coupon, left: int, mine: int) -> T:
    """Whether the customer can claim ``coupon`` now, in the order redeeming checks it."""
    where = CITY_NAMES.get(coupon.city, T(zh_CN=coupon.city, en=coupon.city))
    state = window(coupon, ctx.now)
    if state == "not_started":
        return T(zh_CN="尚未开始", en="Not open yet")
    if state == "expired":
        return T(zh_CN="已过期", en="Expired")
    city = customer_city(ctx)
    if city is None:
        return T(zh_CN=f"仅限{where.zh_CN}使用；授权读取所在城市后即可领取",
                 en=f"{where.en} only; allow access to your city to claim it")
    if city.code != coupon.city:
        return T(zh_CN=f"仅限{where.zh_CN}使用，您所在城市为{city.name.zh_CN}",
                 en=f"{where.en} only; you are in {city.name.en or city.name.zh_CN}")
    if mine >= coupon.per_customer_limit:
        return T(zh_CN="您已领满", en="You have claimed all yours")
    if left <= 0:
        return T(zh_CN="已抢光", en="All claimed")
    return T(zh_CN="可领取", en="You can claim it")


def coupon_page(ctx: PluginContext, coupon: Coupon, *, left: int, mine: int) -> Page:
    """The coupon's terms and this customer's standing, ``left`` of its stock, ``mine`` claimed by them."""
    where = CITY_NAMES.get(coupon.city, T(zh_CN=coupon.city, en=coupon.city))
    opens, closes = local_date(coupon.valid_from).isoformat(), local_date(coupon.valid_until).isoformat()
    limit = coupon.per_customer_limit
    lines = (
        PageLine(label=T(zh_CN="商户", en="Merchant"), value=coupon.merchant),
        PageLine(label=T(zh_CN="优惠", en="Deal"), value=coupon.title),
        PageLine(label=T(zh_CN="适用城市", en="City"), value=where),
        PageLine(label=T(zh_CN="有效期", en="Valid"),
                 value=T(zh_CN=f"{opens} 至 {closes}", en=f"{opens} to {closes}")),
        PageLine(label=T(zh_CN="剩余", en="Left"), value=T(zh_CN=f"{left} 张", en=f"{left}")),
        PageLine(label=T(zh_CN="每人限领", en="Per customer"),
                 value=T(zh_CN=f"{limit} 张，您已领 {mine} 张", en=f"{limit}; you have claimed {mine}")),
        PageLine(label=T(zh_CN="状态", en="Status"), value=_verdict(ctx, coupon, left, mine)),
    )
    return Page(
        title=coupon.headline,
        sections=(PageSection(key="terms", title=T(zh_CN="使用说明", en="Terms"), lines=lines),),
    )


@hookimpl
async def page(ctx: PluginContext, path: str) -> Page | None:
    """``coupons/<id>``; ``None`` for any other path or an unknown coupon."""
    head, _, coupon_id = path.partition("/")
    coupon = by_id(coupon_id) if head == "coupons" else None
    if coupon is None:
        return None
    keys = [stock_key(coupon), customer_key(coupon, ctx.customer.id)]
    taken = await ctx.storage.acounters(keys)
    return coupon_page(ctx, coupon, left=max(0, coupon.stock - taken[keys[0]]), mine=taken[keys[1]])
