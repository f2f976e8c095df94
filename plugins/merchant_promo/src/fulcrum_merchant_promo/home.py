"""Home banners: featured deals in the customer's city, and nothing at all elsewhere."""

from __future__ import annotations

import functools
from datetime import UTC, timedelta
from typing import NamedTuple

from fulcrum_sdk import Action, LocalizedText, PluginContext, SlotOffer, hookimpl
from fulcrum_sdk.localtime import local_date

from fulcrum_merchant_promo._ranking import priority, segment_of
from fulcrum_merchant_promo.availability import local_offers
from fulcrum_merchant_promo.catalogue import CITY_NAMES, Coupon, coupons

__all__ = ["LAST_MOMENT", "home_slot_offers"]

LAST_MOMENT = timedelta(microseconds=1)
"""A coupon's ``valid_until`` is its last redeemable moment; the host's is exclusive, so a banner's ends
this much later (shown exactly as long as the coupon can be redeemed)."""


class _Banner(NamedTuple):
    """A coupon's banner text around its live stock count, and its other fixed parts."""

    title: LocalizedText
    zh_before: str
    zh_after: str
    en_before: str
    en_after: str
    action: Action


def _banner_of(coupon: Coupon) -> _Banner:
    city = CITY_NAMES.get(coupon.city, LocalizedText(zh_CN=coupon.city))
    until = local_date(coupon.valid_until).isoformat()
    return _Banner(
        title=coupon.headline,
        zh_before=f"仅限{city.zh_CN} · 剩余 ",
        zh_after=f" 张 · 有效期至 {until}",
        en_before=f"{city.en or city.zh_CN} only · ",
        en_after=f" left · until {until}",
        action=Action(uri=coupon.uri),
    )


@functools.cache
def _banners() -> dict[str, tuple[Coupon, _Banner]]:
    """Every coupon and its fixed banner parts by id: derived once from the static catalogue, so a
    home page formats only the stock count."""
    return {c.id: (c, _banner_of(c)) for c in coupons()}


@functools.lru_cache(maxsize=4096)
def _offer(coupon_id: str, left: int, segment: str | None) -> SlotOffer:
    """The banner of the coupon ``coupon_id`` with ``left`` in stock, ranked for ``segment``: one shared
    offer per combination (a page seen before formats and ranks nothing, and the host answers an offer
    it has checked by identity). Keyed by the id, not the coupon, whose hash is computed afresh.

    The window is given in UTC, the same instants as the catalogue's +08:00: ``ctx.now`` is UTC, and
    the host compares two datetimes with one tzinfo without asking either for its offset."""
    coupon, b = _banners()[coupon_id]
    return SlotOffer(
        slot="home.banner/v1",
        key=f"coupon-{coupon_id}",
        title=b.title,
        subtitle=LocalizedText(
            zh_CN=f"{b.zh_before}{left}{b.zh_after}", en=f"{b.en_before}{left}{b.en_after}"
        ),
        action=b.action,
        priority=priority(coupon, segment),
        valid_from=coupon.valid_from.astimezone(UTC),
        valid_until=coupon.valid_until.astimezone(UTC) + LAST_MOMENT,
    )


@hookimpl
async def home_slot_offers(ctx: PluginContext) -> list[SlotOffer]:
    """One banner per featured, redeemable coupon in the customer's city (stock from one read)."""
    if not ctx.has_scope("slot:home.banner"):
        return []
    segment = segment_of(ctx)
    return [_offer(coupon.id, left, segment) for coupon, left in await local_offers(ctx, featured_only=True)]
