"""Ordering deals: bigger discounts first, featured ones ahead, and a nudge for the customer's segment.

The segment is read only through ``profile:basic`` (an optional scope the customer consents to);
without it every customer gets the same order.
"""

from __future__ import annotations

from fulcrum_sdk import PluginContext

from fulcrum_merchant_promo.catalogue import Coupon

__all__ = ["priority", "segment_of"]

_SEGMENT_FAVOURITES: dict[str, frozenset[str]] = {
    "affluent": frozenset({"dining"}),
    "mass": frozenset({"grocery", "travel"}),
}


def segment_of(ctx: PluginContext) -> str | None:
    """The customer's segment when ``profile:basic`` is granted and consented to, else ``None``."""
    if not ctx.data.allows("profile:basic"):
        return None
    profile = ctx.data.profile()
    return profile.segment if profile else None


def priority(coupon: Coupon, segment: str | None) -> int:
    """0–1000: 100, plus the discount in yuan (up to 300), plus 200 if featured, plus 100 for the segment."""
    score = 100 + min(300, coupon.face_value_fen // 100) + (200 if coupon.featured else 0)
    if segment is not None and coupon.category in _SEGMENT_FAVOURITES.get(segment, frozenset()):
        score += 100
    return min(score, 1000)
