"""Pension (养老): the retail bank's pension department's scenario plugin.

This module is the plugin: its entry point ``pension`` in the ``fulcrum`` group names it, and the
host registers the hook implementations imported here. The manifest is ``fulcrum-plugin.toml``
beside this file.
"""

from fulcrum_pension.contribution import execute_transaction, register_transaction_types
from fulcrum_pension.feeds import feed_items
from fulcrum_pension.home import home_slot_offers
from fulcrum_pension.pages import page
from fulcrum_pension.search import search

__all__ = [
    "execute_transaction", "feed_items", "home_slot_offers", "page", "register_transaction_types", "search",
]
