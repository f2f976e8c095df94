"""Local merchant promotions (本地商户优惠): a partner plugin by the CityLife platform.

This module is the plugin: its entry point ``merchant-promo`` in the ``fulcrum`` group names it,
and the host registers the hook implementations imported here. The manifest is
``fulcrum-plugin.toml`` beside this file; the seeded coupon catalogue is ``coupons.toml``.
"""

from fulcrum_merchant_promo.feeds import feed_items
from fulcrum_merchant_promo.home import home_slot_offers
from fulcrum_merchant_promo.pages import page
from fulcrum_merchant_promo.redeem import execute_transaction, register_transaction_types
from fulcrum_merchant_promo.search import search

__all__ = [
    "execute_transaction", "feed_items", "home_slot_offers", "page", "register_transaction_types", "search",
]
