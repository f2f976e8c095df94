"""Search hits: the customer's local deals, by merchant name, category or discount."""

from __future__ import annotations

from fulcrum_sdk import Action, PluginContext, SearchHit, hookimpl
from fulcrum_sdk.matching import relevance

from fulcrum_merchant_promo.availability import local_offers
from fulcrum_merchant_promo.catalogue import CATEGORY_NAMES

__all__ = ["search"]

_GENERAL = ("优惠", "优惠券", "商户", "coupon", "deals")


@hookimpl
async def search(ctx: PluginContext, query: str) -> list[SearchHit]:
    """Local redeemable coupons whose merchant, category or title matches ``query``."""
    hits = []
    for coupon, _left in await local_offers(ctx):
        category = CATEGORY_NAMES[coupon.category]
        terms = (
            coupon.merchant.zh_CN,
            coupon.merchant.en or "",
            category.zh_CN,
            category.en or "",
            coupon.category,
            coupon.title.zh_CN,
        )
        score = relevance(query, terms) or 0.6 * relevance(query, _GENERAL)
        if score:
            hits.append(
                SearchHit(
                    key=f"coupon-{coupon.id}",
                    kind="merchant",
                    title=coupon.headline,
                    subtitle=category,
                    action=Action(uri=coupon.uri),
                    relevance=score,
                )
            )
    return hits
