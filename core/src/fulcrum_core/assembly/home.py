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

Campaigns (``home_slot_campaigns``) are the same offers on every page until the store refreshes them,
so they are ranked once per set of held campaigns (:func:`_ranked_campaigns`) and each page merges
its customer's own offers into those lists, checking validity and targeting only for the campaign
offers it reaches: the same items as ranking everything, in time that grows with what is examined.
A slot whose campaigns need no check per page (no validity window, no targeting) and has no pins is
remembered per own offers (:func:`_fill_unchecked`): customers with the same own offers share it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from operator import is_, itemgetter
from types import MappingProxyType
from typing import NamedTuple

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
    campaigns: Mapping[str, tuple[SlotOffer, ...]] | None = None,
) -> dict[str, list[HomeItem]]:
    """Every inventory slot (possibly empty) with its chosen items, from offers by plugin id.

    ``pins`` maps slot id → plugin id → 1-based position (the customer's branch configuration).
    ``seen_as`` gives the customer as each plugin sees them, for targeting (default: ``customer``).
    ``campaigns`` are the plugins' held campaign offers by plugin id: the same result as each plugin's
    ``offers`` followed by its campaigns, so a key a plugin offers both ways shows its own offer when
    that one is live and targets the customer.
    """
    now = as_utc(now)
    if campaigns:
        ranking = _ranked_campaigns(campaigns, inventory, granted)
        if ranking is not None:
            return _with_campaigns(offers, ranking, inventory, granted, customer, now, pins, seen_as)
        offers = _joined(offers, campaigns)
    # The ranked candidates of each slot (every slot present); an empty slot stays empty.
    candidates, _, _ = _candidates(offers, inventory, _scopes_of(inventory), granted, customer, now, seen_as)
    chosen: dict[str, list[HomeItem]] = {}
    no_pins: Mapping[str, int] = {}
    for slot, ranked in candidates.items():
        if not ranked:
            chosen[slot] = []
            continue
        ranked.sort(key=_rank)
        chosen[slot] = _fill(ranked, inventory[slot], pins.get(slot, no_pins) if pins else no_pins)
    return chosen


def _scopes_of(inventory: Mapping[str, SlotConfig]) -> Mapping[str, str]:
    """Slot id -> its placement scope, worked out once per inventory (the settings hand every page the
    same mapping, held here so its id is not reused) instead of once per page."""
    last = _last_scopes[0]
    if last is not None and last[0] is inventory:
        return last[1]
    scope_of = {slot: slot_scope(slot) for slot in inventory}
    _last_scopes[0] = (inventory, scope_of)
    return scope_of


_last_scopes: list[tuple[Mapping[str, SlotConfig], dict[str, str]] | None] = [None]


_rank = itemgetter(0, 1, 2)
"""Priority (highest first), then plugin id, then key: a stable order that never compares offers."""
_by_position = itemgetter(0, 1)
"""Pinned items by position, then plugin id."""


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
    if reserved:
        for position, _, item in sorted(reserved, key=_by_position):
            items.insert(position - 1, item)  # past the end inserts last
    return items


class _Campaign(NamedTuple):
    """A held campaign offer in a slot's ranked list, with what a page needs to show or skip it."""

    rank: int  # minus the priority: ascending is best first, then plugin id, then key
    plugin: str
    key: str
    item: HomeItem
    marker: tuple[str, str, str]  # slot, plugin, key: the plugin's own offer with it comes first
    checked: SlotOffer | None  # the offer when it has a validity window or targeting to check per page
    earlier: tuple[SlotOffer, ...]  # the plugin's campaign offers with this marker before it, to check
    alone: bool  # the plugin's only campaign entry in the slot


class _Ranked(NamedTuple):
    """One set of held campaigns ranked per slot: built once, merged into every page that holds it."""

    held: tuple[tuple[SlotOffer, ...], ...]  # the tuples it was built from, compared by identity
    granted: Mapping[str, frozenset[str]]  # held, so the id in the key is not reused
    scope_of: dict[str, str]  # inventory slot -> its placement scope
    by_slot: dict[str, list[_Campaign]]
    by_plugin: dict[str, dict[str, list[_Campaign]]]  # slot -> plugin -> its entries, ranked (pins)
    # The slots whose every entry is shown whatever the customer and the time (no validity window, no
    # targeting, no earlier offer of its marker): there a slot without pins is a function of its own
    # candidates alone (see _fill_unchecked).
    unchecked: frozenset[str]


def _joined(
    offers: Mapping[str, Sequence[SlotOffer]], campaigns: Mapping[str, tuple[SlotOffer, ...]]
) -> dict[str, Sequence[SlotOffer]]:
    """Each plugin's offers followed by its campaigns (a plugin may have both)."""
    joined: dict[str, Sequence[SlotOffer]] = dict(offers)
    for plugin, held in campaigns.items():
        own = joined.get(plugin)
        joined[plugin] = [*own, *held] if own else held
    return joined


def _ranked_campaigns(
    campaigns: Mapping[str, tuple[SlotOffer, ...]],
    inventory: Mapping[str, SlotConfig],
    granted: Mapping[str, frozenset[str]],
) -> _Ranked | None:
    """The ranked campaign lists for these held tuples, or ``None`` the first time they come (ranking
    them costs a few pages' assembly: tuples seen once, as with ``campaign_ttl_ms = 0``, are not
    worth it). The store hands every page the same tuples until a refresh replaces one.

    Keyed by the grants' identity (the home page builds a new mapping when the plugins or their
    grants change), the slot ids and the plugin ids, and matched to the tuples by identity (what is
    kept holds them, so their ids are not reused). The mapping the last call ranked answers again by
    identity: the campaign store hands pages like the last one the same mapping, which nobody changes."""
    last = _last[0]
    if last is not None and last.campaigns is campaigns and last.granted is granted and (
        last.inventory is inventory
    ):
        return last.ranked
    key = (id(granted), len(inventory), *inventory, *campaigns)
    known = _ranked.get(key)
    if known is None:
        if len(_ranked) >= _RANKED_MAX:
            _ranked.clear()
        known = _ranked[key] = []
    else:
        for ranked in known:
            if all(map(is_, ranked.held, campaigns.values())):  # as many as the key's plugin ids
                _last[0] = _Last(campaigns, granted, inventory, ranked)
                return ranked
    once = _once.get(key)
    if once is None or not all(map(is_, once[0], campaigns.values())):
        if len(_once) >= _RANKED_MAX:
            _once.clear()
        _once[key] = (tuple(campaigns.values()), granted)
        return None
    del _once[key]
    ranked = _rank_campaigns(campaigns, inventory, granted)
    if len(known) >= _VARIANTS_MAX:
        known.pop()
    known.insert(0, ranked)  # the latest first: a refresh replaces a tuple for good
    _last[0] = _Last(campaigns, granted, inventory, ranked)
    return ranked


class _Last(NamedTuple):
    """The last mapping ranked, held (so its id is not reused), with what it was ranked against."""

    campaigns: Mapping[str, tuple[SlotOffer, ...]]
    granted: Mapping[str, frozenset[str]]
    inventory: Mapping[str, SlotConfig]
    ranked: _Ranked


_last: list[_Last | None] = [None]


_ranked: dict[tuple[object, ...], list[_Ranked]] = {}
_once: dict[tuple[object, ...], tuple[tuple[tuple[SlotOffer, ...], ...], object]] = {}
"""The tuples last seen once per key, not ranked yet (held with the grants, as ``_Ranked`` holds them)."""
_RANKED_MAX = 64
_VARIANTS_MAX = 16
"""Sets of tuples ranked per key: one per distinct branch settings of the plugins, and one a refresh
replaced, until it is pushed out."""


def _rank_campaigns(
    campaigns: Mapping[str, tuple[SlotOffer, ...]],
    inventory: Mapping[str, SlotConfig],
    granted: Mapping[str, frozenset[str]],
) -> _Ranked:
    """Each slot's campaign offers, scope-filtered and ranked as :func:`assemble_home` ranks them. A
    plugin's repeated marker is kept with the offers before it (the first one a page admits wins), and
    dropped once one before it needs no check (that one always wins)."""
    scope_of = {slot: slot_scope(slot) for slot in inventory}
    rows: dict[str, list[tuple[int, str, str, SlotOffer, bool, tuple[SlotOffer, ...]]]] = {
        slot: [] for slot in inventory
    }
    for plugin, held in campaigns.items():
        scopes = granted.get(plugin, frozenset())
        before: dict[tuple[str, str], tuple[SlotOffer, ...] | None] = {}  # None: one needing no check
        for offer in held:
            slot = offer.slot
            scope = scope_of.get(slot)
            if scope is None or scope not in scopes:
                continue
            earlier = before.get((slot, offer.key), ())
            if earlier is None:
                continue
            checked = offer.valid_from is not None or offer.valid_until is not None or (
                offer.targeting is not None
            )
            before[slot, offer.key] = (*earlier, offer) if checked else None
            rows[slot].append((-offer.priority, plugin, offer.key, offer, checked, earlier))
    by_slot: dict[str, list[_Campaign]] = {}
    by_plugin: dict[str, dict[str, list[_Campaign]]] = {}
    for slot, entries in rows.items():
        entries.sort(key=_rank)
        counts: dict[str, int] = {}
        for entry in entries:
            counts[entry[1]] = counts.get(entry[1], 0) + 1
        ranked = by_slot[slot] = [
            _Campaign(
                rank, plugin, key, _item(plugin, offer), (slot, plugin, key), offer if checked else None,
                earlier, counts[plugin] == 1,
            )
            for rank, plugin, key, offer, checked, earlier in entries
        ]
        grouped = by_plugin[slot] = {}
        for campaign in ranked:
            grouped.setdefault(campaign.plugin, []).append(campaign)
    unchecked = frozenset(
        slot for slot, ranked in by_slot.items()
        if not any(entry.checked is not None or entry.earlier for entry in ranked)
    )
    return _Ranked(tuple(campaigns.values()), granted, scope_of, by_slot, by_plugin, unchecked)


_Shown = Callable[[_Campaign], bool]
_Own = tuple[int, str, str, SlotOffer]


def _candidates(
    offers: Mapping[str, Sequence[SlotOffer]],
    inventory: Mapping[str, SlotConfig],
    scope_of: Mapping[str, str],
    granted: Mapping[str, frozenset[str]],
    customer: Customer,
    now: datetime,
    seen_as: SeenAs | None,
) -> tuple[dict[str, list[_Own]], set[tuple[str, str, str]], set[str]]:
    """Each inventory slot's candidates among ``offers`` (unsorted; granted, live, targeting the
    customer, the first of each (slot, plugin, key)), the markers taken, and the plugins that have one."""
    candidates: dict[str, list[_Own]] = {slot: [] for slot in inventory}
    seen: set[tuple[str, str, str]] = set()
    owners: set[str] = set()
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
            owners.add(plugin)
            candidates[slot].append((-offer.priority, plugin, offer.key, offer))
    return candidates, seen, owners


def _with_campaigns(
    offers: Mapping[str, Sequence[SlotOffer]],
    ranked: _Ranked,
    inventory: Mapping[str, SlotConfig],
    granted: Mapping[str, frozenset[str]],
    customer: Customer,
    now: datetime,
    pins: Mapping[str, Mapping[str, int]] | None,
    seen_as: SeenAs | None,
) -> dict[str, list[HomeItem]]:
    """:func:`assemble_home` with campaigns: the customer's own offers ranked per page, merged with
    the campaigns' remembered ranking."""
    # The customer's own offers, taken exactly as assemble_home takes them.
    candidates, seen, owners = _candidates(
        offers, inventory, ranked.scope_of, granted, customer, now, seen_as
    )

    def shown(entry: _Campaign) -> bool:
        """True when ``entry`` is the offer for its marker that ranking everything would keep."""
        plugin = entry.plugin
        if plugin in owners and entry.marker in seen:
            return False
        offer = entry.checked
        if offer is not None and not _admitted(offer, plugin, customer, now, seen_as):
            return False
        return not entry.earlier or not any(
            _admitted(o, plugin, customer, now, seen_as) for o in entry.earlier
        )

    chosen: dict[str, list[HomeItem]] = {}
    no_pins: Mapping[str, int] = {}
    for slot, mine in candidates.items():
        held = ranked.by_slot[slot]
        if not held and not mine:
            chosen[slot] = []
            continue
        mine.sort(key=_rank)
        pinned = pins.get(slot, no_pins) if pins else no_pins
        if not held:
            chosen[slot] = _fill(mine, inventory[slot], pinned)
        elif not pinned and slot in ranked.unchecked:
            chosen[slot] = _fill_unchecked(ranked, slot, mine, inventory[slot], shown, owners)
        else:
            chosen[slot] = _fill_merged(
                mine, held, ranked.by_plugin[slot], inventory[slot], pinned, shown, owners
            )
    return chosen


def _fill_unchecked(
    ranked: _Ranked, slot: str, mine: list[_Own], config: SlotConfig, shown: _Shown, owners: set[str]
) -> list[HomeItem]:
    """:func:`_fill_merged` for a slot of ``ranked.unchecked`` without pins, remembered per own
    candidates: what it shows then depends only on them (which campaign entries their markers
    displace, what ranks between them), so customers with the same own offers share one answer.

    Keyed by the ranking's and the candidates' offers' identity (the entry holds them, so their ids are
    not reused), the candidates' plugins and the slot's capacity and share; a new list each time."""
    key = (id(ranked), slot, config.capacity, config.per_plugin, *[(own[1], id(own[3])) for own in mine])
    known = _fills.get(key)
    if known is None:
        room = config.capacity
        items = _take(mine, ranked.by_slot[slot], shown, owners, room, config.per_plugin, {}, set()) if (
            room > 0
        ) else []
        if len(_fills) >= _FILLS_MAX:
            _fills.clear()
        _fills[key] = (ranked, tuple([own[3] for own in mine]), tuple(items))
        return items
    return list(known[2])


_fills: dict[tuple[object, ...], tuple[_Ranked, tuple[SlotOffer, ...], tuple[HomeItem, ...]]] = {}
_FILLS_MAX = 4096
"""Slots filled from a ranking and own candidates (customers with the same own offers share one), in
all; started over when full."""


def _admitted(
    offer: SlotOffer, plugin: str, customer: Customer, now: datetime, seen_as: SeenAs | None
) -> bool:
    """True when ``offer`` is live at ``now`` and targets the customer as ``plugin`` sees them."""
    if (offer.valid_from is not None or offer.valid_until is not None) and not is_live(offer, now):
        return False
    return offer.targeting is None or targets(
        offer.targeting, customer if seen_as is None else seen_as(plugin)
    )


def _fill_merged(
    mine: list[_Own],
    held: list[_Campaign],
    held_by_plugin: Mapping[str, list[_Campaign]],
    config: SlotConfig,
    pinned: Mapping[str, int],
    shown: _Shown,
    owners: set[str],
) -> list[HomeItem]:
    """:func:`_fill` over the own candidates merged with the ranked campaigns, reading no further than
    it must."""
    per_plugin: dict[str, int] = {}
    reserved: list[tuple[int, str, HomeItem]] = []
    taken: set[tuple[str, str]] = set()
    if pinned:
        # Each pinned plugin's best candidate; the best-ranked ``capacity`` of them are reserved.
        bests: list[tuple[int, str, str, HomeItem]] = []
        for plugin in pinned:
            own = [o for o in mine if o[1] == plugin]
            best = next(_merged(own, held_by_plugin.get(plugin, []), shown), None)
            if best is not None:
                bests.append(best)
        bests.sort(key=_rank)
        for _, plugin, key, item in bests[: config.capacity]:
            per_plugin[plugin] = 1
            reserved.append((pinned[plugin], plugin, item))
            taken.add((plugin, key))
    room = config.capacity - len(reserved)
    items = _take(mine, held, shown, owners, room, config.per_plugin, per_plugin, taken) if room > 0 else []
    if reserved:
        for position, _, item in sorted(reserved, key=_by_position):
            items.insert(position - 1, item)  # past the end inserts last
    return items


def _take(
    mine: list[_Own],
    held: list[_Campaign],
    shown: _Shown,
    owners: set[str],
    room: int,
    most: int,
    per_plugin: dict[str, int],
    taken: set[tuple[str, str]],
) -> list[HomeItem]:
    """Up to ``room`` items in rank order, at most ``most`` per plugin, none of ``taken``."""
    items: list[HomeItem] = []
    i, n = 0, len(mine)
    for entry in held:
        rank, plugin, key, item, _, checked, earlier, alone = entry
        while i < n:  # the own candidates ranked before this entry
            own = mine[i]
            if own[0] > rank or (own[0] == rank and (own[1], own[2]) > (plugin, key)):
                break
            i += 1
            count = per_plugin.get(own[1], 0)
            if count < most and not (taken and (own[1], own[2]) in taken):
                per_plugin[own[1]] = count + 1
                items.append(_item(own[1], own[3]))
                if len(items) >= room:
                    return items
        if plugin in owners or checked is not None or earlier:
            if not shown(entry):
                continue
        elif alone and not taken:  # nothing else of the plugin's counts in this slot: no share to check
            items.append(item)
            if len(items) >= room:
                return items
            continue
        count = per_plugin.get(plugin, 0)
        if count < most and not (taken and (plugin, key) in taken):
            per_plugin[plugin] = count + 1
            items.append(item)
            if len(items) >= room:
                return items
    for own in mine[i:]:
        count = per_plugin.get(own[1], 0)
        if count < most and not (taken and (own[1], own[2]) in taken):
            per_plugin[own[1]] = count + 1
            items.append(_item(own[1], own[3]))
            if len(items) >= room:
                break
    return items


def _merged(
    mine: list[_Own], held: list[_Campaign], shown: _Shown
) -> Iterator[tuple[int, str, str, HomeItem]]:
    """Own candidates and the campaign ones ``shown`` admits, in rank order, each checked when reached."""
    i, n = 0, len(mine)
    for entry in held:
        while i < n and (mine[i][0], mine[i][1], mine[i][2]) < (entry.rank, entry.plugin, entry.key):
            own = mine[i]
            yield own[0], own[1], own[2], _item(own[1], own[3])
            i += 1
        if shown(entry):
            yield entry.rank, entry.plugin, entry.key, entry.item
    for own in mine[i:]:
        yield own[0], own[1], own[2], _item(own[1], own[3])


def capped_slots(inventory: Mapping[str, SlotConfig]) -> Mapping[str, SlotConfig]:
    """The slots with a per-customer frequency cap (worked out once per inventory, as :func:`_scopes_of`;
    read-only: the same mapping is handed to every caller)."""
    last = _last_capped[0]
    if last is not None and last[0] is inventory:
        return last[1]
    capped = MappingProxyType(
        {slot: config for slot, config in inventory.items() if config.frequency_cap is not None}
    )
    _last_capped[0] = (inventory, capped)
    return capped


_last_capped: list[tuple[Mapping[str, SlotConfig], Mapping[str, SlotConfig]] | None] = [None]


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
