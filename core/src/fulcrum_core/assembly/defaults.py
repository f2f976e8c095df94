"""Platform default content: what an empty home slot shows when a plugin was left out of the page.

The platform is a plugin of its own here: its offers come from ``settings.home_defaults`` (the same
``SlotOffer`` struct plugins return, so operators write them in the settings TOML) and appear under
the plugin id ``platform``. They fill only slots that ended up empty, so they never push a plugin's
item out, and they obey validity windows, targeting and the slot's capacity like any offer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from fulcrum_sdk.context import Customer
from fulcrum_sdk.models import SlotOffer

from fulcrum_core.assembly.common import as_utc, targets
from fulcrum_core.assembly.home import HomeItem, is_live
from fulcrum_core.settings import SlotConfig

__all__ = ["PLATFORM", "fill_empty_slots"]

PLATFORM = "platform"
"""The plugin id shown on platform default items."""


def fill_empty_slots(
    slots: Mapping[str, list[HomeItem]],
    defaults: Sequence[SlotOffer],
    *,
    inventory: Mapping[str, SlotConfig],
    customer: Customer,
    now: datetime,
) -> dict[str, list[HomeItem]]:
    """``slots`` with every empty inventory slot given its live, targeted default items (by priority)."""
    now = as_utc(now)
    out = dict(slots)
    ranked = sorted(defaults, key=lambda o: (-o.priority, o.key))
    for offer in ranked:
        config = inventory.get(offer.slot)
        if config is None or slots.get(offer.slot):
            continue
        if not is_live(offer, now) or not targets(offer.targeting, customer):
            continue
        items = out.setdefault(offer.slot, [])
        if len(items) < config.capacity and all(item.key != offer.key for item in items):
            out[offer.slot] = [*items, HomeItem(
                plugin=PLATFORM, key=offer.key, title=offer.title, subtitle=offer.subtitle,
                image=offer.image, action=offer.action,
            )]
    return out
