"""Whether a coupon can be redeemed now, and which coupons the customer in ``ctx`` may see.

Stock taken is a storage counter per coupon; redemptions per customer a counter per coupon and
(pseudonymous) customer. The city comes only from ``location:city`` with the customer's consent:
without it the plugin shows nothing rather than guessing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fulcrum_sdk import PluginContext
from fulcrum_sdk.data import City
from fulcrum_sdk.localtime import aware
from fulcrum_sdk.storage import PluginStorage

from fulcrum_merchant_promo.catalogue import Coupon, coupons

__all__ = ["Status", "customer_city", "customer_key", "local_coupons", "remaining", "status", "stock_key"]

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


def status(storage: PluginStorage, coupon: Coupon, now: datetime) -> Status:
    """Whether ``coupon`` can be redeemed at ``now``: inside its window and not sold out."""
    moment = aware(now)
    if moment < coupon.valid_from:
        return "not_started"
    if moment > coupon.valid_until:
        return "expired"
    return "available" if remaining(storage, coupon) > 0 else "sold_out"


def customer_city(ctx: PluginContext) -> City | None:
    """The customer's city, or ``None`` when not granted, not consented to, or unknown."""
    return ctx.data.city() if ctx.data.allows("location:city") else None


def local_coupons(ctx: PluginContext) -> list[Coupon]:
    """Coupons in the customer's city that can be redeemed now; empty when the city is unknown."""
    city = customer_city(ctx)
    if city is None:
        return []
    return [c for c in coupons() if c.city == city.code and status(ctx.storage, c, ctx.now) == "available"]
