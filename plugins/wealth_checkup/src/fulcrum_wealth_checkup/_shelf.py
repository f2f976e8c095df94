"""Which listed products may be shown to the customer: on sale today and within their tolerance."""

from __future__ import annotations

from fulcrum_sdk import PluginContext
from fulcrum_sdk.localtime import local_date
from fulcrum_sdk.models import risk_allows

from fulcrum_wealth_checkup.catalogue import Product, products

__all__ = ["on_shelf"]


def on_shelf(ctx: PluginContext) -> list[Product]:
    """Products on sale today that suit the customer; only R1 ones when the tolerance is unknown.

    Promoting a product the customer may not buy would be a compliance problem, so an unknown,
    expired or ungranted risk profile narrows the shelf to the lowest risk level.
    """
    today = local_date(ctx.now)
    risk = ctx.data.risk() if ctx.data.allows("profile:risk") else None
    tolerance = risk.tolerance if risk and not risk.is_expired(today) else "C1"
    return [p for p in products().values() if p.on_sale(today) and risk_allows(tolerance, p.risk_level)]
