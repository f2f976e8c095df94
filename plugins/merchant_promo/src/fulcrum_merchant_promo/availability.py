"""Whether a coupon can be redeemed now, and which coupons the customer in ``ctx`` may see.

Stock taken is a storage counter per coupon; redemptions per customer a counter per coupon and
(pseudonymous) customer. The city comes only from ``location:city`` with the customer's consent:
without it the plugin shows nothing rather than guessing. The display hooks read every stock
counter they need in one ``acounters`` call (possibly cached, so "12 left" may be a second old);
redeeming reads fresh and relies on the bounded ``add`` alone to enforce the stock.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, NamedTuple

from fulcrum_sdk import PluginContext, ScopeDenied
from fulcrum_sdk.data import City
from fulcrum_sdk.localtime import aware
from fulcrum_sdk.storage import PluginStorage

from fulcrum_merchant_promo.catalogue import Coupon, coupons

__all__ = [
    "LocalOffer",
    "Status",
    "customer_city",
    "customer_key",
    "local_offers",
    "remaining",
    "status",
    "stock_key",
    "window",
]

Status = Literal["available", "not_started", "expired", "sold_out"]


def stock_key(coupon: Coupon) -> str:
    """The counter of redemptions of ``coupon`` by everyone."""
    return f"stock-taken:{coupon.id}"


def customer_key(coupon: Coupon, customer_id: str) -> str:
    """The counter of redemptions of ``coupon`` by one customer."""
    return f"redeemed:{coupon.id}:{customer_id}"


def remaining(storage: PluginStorage, coupon: Coupon) -> int:
    """Coupons left to redeem."""
    return max(0, coupon.stock - storage.counter(stock_key(coupon)))


def window(coupon: Coupon, now: datetime) -> Status | None:
    """``not_started`` or ``expired`` when ``now`` is outside the coupon's window, else ``None``."""
    moment = aware(now)
    if moment < coupon.valid_from:
        return "not_started"
    if moment > coupon.valid_until:
        return "expired"
    return None


def status(storage: PluginStorage, coupon: Coupon, now: datetime) -> Status:
    """Whether ``coupon`` can be redeemed at ``now``: inside its window and not sold out."""
    return window(coupon, now) or ("available" if remaining(storage, coupon) > 0 else "sold_out")


def customer_city(ctx: PluginContext) -> City | None:
    """The customer's city, or ``None`` when not granted, not consented to, or unknown; raises
    ``DataUnavailable`` when the host could not read the consents (the customer may have consented)."""
    try:
        return ctx.data.city()
    except ScopeDenied:
        return None


class LocalOffer(NamedTuple):
    """A coupon the customer may redeem now, with how many are left (as of the read)."""

    coupon: Coupon
    left: int


class _Listed(NamedTuple):
    """A coupon with what the display hooks derive from it on every request, derived once instead."""

    coupon: Coupon
    opens: datetime
    """``valid_from`` in UTC: ``ctx.now`` is UTC, and equal tzinfos compare without offset arithmetic."""
    closes: datetime
    stock_key: str


@functools.cache
def _by_city() -> Mapping[str, tuple[_Listed, ...]]:
    """The catalogue's coupons by city code, in catalogue order: derived once from static seed data,
    so a display hook scans its own city's few coupons rather than the whole catalogue."""
    grouped: dict[str, list[_Listed]] = {}
    for c in coupons():
        listed = _Listed(c, c.valid_from.astimezone(UTC), c.valid_until.astimezone(UTC), stock_key(c))
        grouped.setdefault(c.city, []).append(listed)
    return MappingProxyType({city: tuple(cs) for city, cs in grouped.items()})


@functools.cache
def _featured_by_city() -> Mapping[str, tuple[_Listed, ...]]:
    """:func:`_by_city`'s featured coupons alone (what the home banner shows), filtered once."""
    return MappingProxyType(
        {city: tuple(x for x in listed if x.coupon.featured) for city, listed in _by_city().items()}
    )


# Read and indexed as the plugin loads, not on its first page: parsing the catalogue there held the event
# loop that every plugin of a fresh worker's first page waits on (≈ 40 ms on a loaded machine).
_featured_by_city()


async def local_offers(ctx: PluginContext, *, featured_only: bool = False) -> list[LocalOffer]:
    """Coupons in the customer's city that can be redeemed now; empty when the city is unknown.

    The stock counters of all of them come from one batched storage read.
    """
    city = customer_city(ctx)
    if city is None:
        return []
    moment = aware(ctx.now)
    listed = (_featured_by_city() if featured_only else _by_city()).get(city.code, ())
    open_now = [x for x in listed if x.opens <= moment <= x.closes]  # inside: window() would say None
    if not open_now:
        return []
    taken = await ctx.storage.acounters([x.stock_key for x in open_now])
    return [LocalOffer(c, left) for c, _, _, key in open_now if (left := c.stock - taken[key]) > 0]
