"""The ``life`` column: every redeemable deal in the customer's city."""

from __future__ import annotations

from fulcrum_sdk import Action, FeedItem, LocalizedText, PluginContext, hookimpl
from fulcrum_sdk.money import yuan

from fulcrum_merchant_promo._ranking import priority, segment_of
from fulcrum_merchant_promo.availability import local_offers

__all__ = ["feed_items"]


@hookimpl
async def feed_items(ctx: PluginContext, column: str) -> list[FeedItem] | None:
    """Offer cards for ``life``; ``None`` for other columns."""
    if column != "life":
        return None
    segment = segment_of(ctx)
    items = []
    for coupon, left in await local_offers(ctx):
        if coupon.min_spend_fen:
            spend = (f"满 {yuan(coupon.min_spend_fen)} 可用", f"on spend of {yuan(coupon.min_spend_fen)}")
        else:
            spend = ("无门槛", "no minimum spend")
        items.append(
            FeedItem(
                key=f"coupon-{coupon.id}",
                column="life",
                kind="offer",
                title=coupon.headline,
                summary=LocalizedText(
                    zh_CN=f"立减 {yuan(coupon.face_value_fen)}，{spend[0]}，剩余 {left} 张，每人限领 "
                    f"{coupon.per_customer_limit} 张。",
                    en=f"{yuan(coupon.face_value_fen)} off {spend[1]}; {left} left, "
                    f"{coupon.per_customer_limit} per customer.",
                ),
                action=Action(uri=coupon.uri),
                published_at=coupon.valid_from,
                priority=priority(coupon, segment),
            )
        )
    return items
