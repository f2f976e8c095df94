"""Wealth check-up (财富体检): the wealth-management department's scenario plugin.

This module is the plugin: its entry point ``wealth-checkup`` in the ``fulcrum`` group names it,
and the host registers the hook implementations imported here. The manifest is
``fulcrum-plugin.toml`` beside this file.
"""

from fulcrum_wealth_checkup.feeds import feed_items
from fulcrum_wealth_checkup.home import home_slot_offers
from fulcrum_wealth_checkup.pages import page
from fulcrum_wealth_checkup.rebalance import execute_transaction, register_transaction_types
from fulcrum_wealth_checkup.search import search

__all__ = [
    "execute_transaction", "feed_items", "home_slot_offers", "page", "register_transaction_types", "search",
]
