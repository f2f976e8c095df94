"""Slot placement overrides in home assembly: a branch pins a plugin's best offer to a position."""

from __future__ import annotations

from typing import Any

from fulcrum_core.assembly.home import assemble_home
from fulcrum_core.settings import SlotConfig

BANNER = "home.banner/v1"
GRANT = frozenset({"slot:home.banner"})


def _slots(kit: Any, offers: dict[str, list[Any]], pins: dict[str, dict[str, int]] | None,
           capacity: int = 5, per_plugin: int = 2) -> list[tuple[str, str]]:
    inventory = {BANNER: SlotConfig(capacity=capacity, per_plugin=per_plugin)}
    chosen = assemble_home(
        offers, inventory=inventory, granted=dict.fromkeys(offers, GRANT), customer=kit.customer(),
        now=kit.now, pins=pins,
    )
    return [(item.plugin, item.key) for item in chosen[BANNER]]


def test_a_pinned_plugin_takes_its_position(kit: Any) -> None:
    """The pinned plugin's best offer sits at position 2; the others keep their rank order around it."""
    offers = {
        "a": [kit.offer("home.banner", "a1", priority=900), kit.offer("home.banner", "a2", priority=800)],
        "p": [kit.offer("home.banner", "p1", priority=10), kit.offer("home.banner", "p2", priority=5)],
    }
    assert _slots(kit, offers, {BANNER: {"p": 2}}) == [("a", "a1"), ("p", "p1"), ("a", "a2"), ("p", "p2")]


def test_a_pin_keeps_a_low_ranked_offer_in_a_full_slot(kit: Any) -> None:
    """With the slot full of better offers, the pinned one still shows, displacing the lowest-ranked."""
    offers = {
        "a": [kit.offer("home.banner", "a1", priority=900), kit.offer("home.banner", "a2", priority=800)],
        "b": [kit.offer("home.banner", "b1", priority=700)],
        "p": [kit.offer("home.banner", "p1", priority=1)],
    }
    assert _slots(kit, offers, {BANNER: {"p": 1}}, capacity=3) == [("p", "p1"), ("a", "a1"), ("a", "a2")]


def test_a_position_past_the_end_places_the_item_last(kit: Any) -> None:
    """Pinned to 5 in a slot holding two items, the pinned offer comes last."""
    offers = {"a": [kit.offer("home.banner", "a1", priority=900)], "p": [kit.offer("home.banner", "p1")]}
    assert _slots(kit, offers, {BANNER: {"p": 5}}) == [("a", "a1"), ("p", "p1")]


def test_pins_for_absent_plugins_or_other_slots_change_nothing(kit: Any) -> None:
    """A pin for a plugin that offered nothing here, or for another slot, leaves the rank order."""
    offers = {
        "a": [kit.offer("home.banner", "a1", priority=1)],
        "b": [kit.offer("home.banner", "b1", priority=2)],
    }
    expected = [("b", "b1"), ("a", "a1")]
    assert _slots(kit, offers, None) == expected
    assert _slots(kit, offers, {BANNER: {"ghost": 1}, "home.notice/v1": {"a": 1}}) == expected


def test_two_pins_fill_their_positions_in_order(kit: Any) -> None:
    """Two pinned plugins (1 and 3) take exactly those positions; per-plugin limits still hold."""
    offers = {
        "a": [kit.offer("home.banner", f"a{n}", priority=900 - n) for n in range(3)],
        "p": [kit.offer("home.banner", "p1", priority=1)],
        "q": [kit.offer("home.banner", "q1", priority=2)],
    }
    got = _slots(kit, offers, {BANNER: {"p": 3, "q": 1}})
    assert got == [("q", "q1"), ("a", "a0"), ("p", "p1"), ("a", "a1")]
