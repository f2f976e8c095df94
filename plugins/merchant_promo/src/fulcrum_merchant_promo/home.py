"""Home banners: featured deals in the customer's city, and nothing at all elsewhere."""

from __future__ import annotations

from fulcrum_sdk import Action, LocalizedText, PluginContext, SlotOffer, hookimpl
from fulcrum_sdk.localtime import local_date

from fulcrum_merchant_promo._ranking import priority, segment_of
from fulcrum_merchant_promo.availability import local_offers
from fulcrum_merchant_promo.catalogue import CITY_NAMES

__all__ = ["home_slot_offers"]


@hookimpl
async def home_slot_offers(ctx: PluginContext) -> list[SlotOffer]:
    """One banner per featured, redeemable coupon in the customer's city (stock from one read)."""
    if not ctx.has_scope("slot:home.banner"):
        return []
    segment = segment_of(ctx)
    offers = []
    for coupon, left in await local_offers(ctx, featured_only=True):
        city = CITY_NAMES.get(coupon.city, LocalizedText(zh_CN=coupon.city))
        until = local_date(coupon.valid_until).isoformat()
        offers.append(
            SlotOffer(
                slot="home.banner/v1",
                key=f"coupon-{coupon.id}",
                title=coupon.headline,
                subtitle=LocalizedText(
                    zh_CN=f"仅限{city.zh_CN} · 剩余 {left} 张 · 有效期至 {until}",
                    en=f"{city.en or city.zh_CN} only · {left} left · until {until}",
                ),
                action=Action(uri=coupon.uri),
                priority=priority(coupon, segment),
                valid_from=coupon.valid_from,
                valid_until=coupon.valid_until,
            )
        )
    return offers
