"""The home page: choose, for every slot of the inventory, which offered items the customer sees.

Rules, in order: a slot outside the inventory, or one the offering plugin holds no ``slot:`` scope
for, is ignored; an offer outside its validity window or not targeted at the customer (as the
offering plugin sees them: ``seen_as``) is dropped;
duplicates (same plugin and key in a slot) keep the first; the rest are ranked by priority (highest
first), ties broken by plugin id then key so the order is stable; each plugin keeps at most the slot's
``per_plugin`` items and the slot at most its ``capacity``. A branch may pin a plugin to a position
(``pins``): that plugin's best offer in the slot is kept whatever its rank and placed at that 1-based
position (or last, when the slot has fewer items). Frequency caps (popups) are applied
afterwards by :func:`apply_frequency_caps` with counts the caller reads from the impression store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import itemgetter

import msgspec
from fulcrum_sdk.context import Customer
from fulcrum_sdk.models import Action, LocalizedText, SlotOffer
from fulcrum_sdk.scopes import slot_scope

from fulcrum_core.assembly.common import SeenAs, as_utc, targets
from fulcrum_core.settings import SlotConfig

__all__ = ["HomeItem", "apply_frequency_caps", "assemble_home", "capped_slots", "is_live"]


class HomeItem(msgspec.Struct, frozen=True, kw_only=True):
    """One item shown in a home-page slot, with the plugin that offered it."""

    plugin: str
    key: str
    title: LocalizedText
    subtitle: LocalizedText | None = None
    image: str | None = None
    action: Action


def is_live(offer: SlotOffer, now: datetime) -> bool:
    """True when ``now`` is inside the offer's validity window (``valid_until`` is exclusive): the
    SDK's :meth:`SlotOffer.live_at`, the one rule the plugin harness applies too."""
    return offer.live_at(now)


def _item(plugin: str, offer: SlotOffer) -> HomeItem:
    """The page item of ``plugin``'s ``offer``: remembered by the offer's identity (validated offers
    are shared, immutable copies, so the same offer recurs on every page that shows it)."""
    known = _items.get(id(offer))
    if known is not None and known[0] is offer and known[1] == plugin:
        return known[2]
    item = HomeItem(
        plugin=plugin, key=offer.key, title=offer.title, subtitle=offer.subtitle, image=offer.image,
        action=offer.action,
    )
    if len(_items) >= _ITEMS_MAX:
        _items.clear()
    _items[id(offer)] = (offer, plugin, item)  # the offer is held, so its id is not reused
    return item


_items: dict[int, tuple[SlotOffer, str, HomeItem]] = {}
_ITEMS_MAX = 4096


def assemble_home(
    offers: Mapping[str, Sequence[SlotOffer]],
    *,
    inventory: Mapping[str, SlotConfig],
    granted: Mapping[str, frozenset[str]],
    customer: Customer,
    now: datetime,
    pins: Mapping[str, Mapping[str, int]] | None = None,
    seen_as: SeenAs | None = None,
) -> dict[str, list[HomeItem]]:
    """Every inventory slot (possibly empty) with its chosen items, from offers by plugin id.

    ``pins`` maps slot id → plugin id → 1-based position (the customer's branch configuration).
    ``seen_as`` gives the customer as each plugin sees them, for targeting (default: ``customer``).
    """
    now = as_utc(now)
    # Slot id -> its placement scope, and the ranked candidates of each slot (every slot present).
    scope_of = {slot: slot_scope(slot) for slot in inventory}
    candidates: dict[str, list[tuple[int, str, str, SlotOffer]]] = {slot: [] for slot in inventory}
    seen: set[tuple[str, str, str]] = set()
    for plugin, plugin_offers in offers.items():
        scopes = granted.get(plugin, frozenset())
        for offer in plugin_offers:
            slot = offer.slot
            scope = scope_of.get(slot)
            if scope is None or scope not in scopes:
                continue
            if (offer.valid_from is not None or offer.valid_until is not None) and not is_live(offer, now):
                continue
            if offer.targeting is not None and not targets(
                offer.targeting, customer if seen_as is None else seen_as(plugin)
            ):
                continue
            marker = (slot, plugin, offer.key)
            if marker in seen:
                continue
            seen.add(marker)
            candidates[slot].append((-offer.priority, plugin, offer.key, offer))
    chosen: dict[str, list[HomeItem]] = {}
    no_pins: Mapping[str, int] = {}
    for slot, ranked in candidates.items():
        ranked.sort(key=_rank)
        chosen[slot] = _fill(ranked, inventory[slot], pins.get(slot, no_pins) if pins else no_pins)
    return chosen


_rank = itemgetter(0, 1, 2)
"""Priority (highest first), then plugin id, then key: a stable order that never compares offers."""


def _fill(
    ranked: Sequence[tuple[int, str, str, SlotOffer]], config: SlotConfig, pinned: Mapping[str, int]
) -> list[HomeItem]:
    """One slot's items: pinned plugins' best offers reserved first, the rest by rank, pins inserted."""
    per_plugin: dict[str, int] = {}
    reserved: list[tuple[int, str, HomeItem]] = []
    taken: set[tuple[str, str]] = set()
    for _, plugin, key, offer in ranked if pinned else ():
        if plugin in pinned and plugin not in per_plugin and len(reserved) < config.capacity:
            per_plugin[plugin] = 1
            reserved.append((pinned[plugin], plugin, _item(plugin, offer)))
            taken.add((plugin, key))
    items: list[HomeItem] = []
    room = config.capacity - len(reserved)
    most = config.per_plugin
    for _, plugin, key, offer in ranked:
        if len(items) >= room:
            break
        count = per_plugin.get(plugin, 0)
        if count < most and not (taken and (plugin, key) in taken):
            per_plugin[plugin] = count + 1
            items.append(_item(plugin, offer))
    for position, _, item in sorted(reserved, key=lambda r: r[:2]):
        items.insert(position - 1, item)  # past the end inserts last
    return items


def capped_slots(inventory: Mapping[str, SlotConfig]) -> dict[str, SlotConfig]:
    """The slots with a per-customer frequency cap."""
    return {slot: config for slot, config in inventory.items() if config.frequency_cap is not None}


def apply_frequency_caps(
    slots: Mapping[str, list[HomeItem]],
    shown: Mapping[str, int],
    inventory: Mapping[str, SlotConfig],
) -> dict[str, list[HomeItem]]:
    """Trim each capped slot to what its cap still allows, given ``shown`` (impressions in the window)."""
    out = dict(slots)
    for slot, config in capped_slots(inventory).items():
        if slot in out and config.frequency_cap is not None:
            room = max(0, config.frequency_cap - shown.get(slot, 0))
            out[slot] = out[slot][:room]
    return out
