"""Home assembly: slot scopes, inventory, validity, targeting, priority, capacity, per-plugin share, caps."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

from fulcrum_core.assembly.home import apply_frequency_caps, assemble_home, capped_slots
from fulcrum_core.settings import SlotConfig, default_slots
from fulcrum_sdk.models import Targeting
from fulcrum_sdk.scopes import slot_scope

ALL = frozenset(slot_scope(s) for s in default_slots())


def _assemble(
    kit: Any,
    offers: dict[str, list[Any]],
    *,
    granted: dict[str, frozenset[str]] | None = None,
    inventory: dict[str, SlotConfig] | None = None,
    persona: str = "young_professional",
) -> Any:
    return assemble_home(
        offers,
        inventory=inventory or default_slots(),
        granted=granted or dict.fromkeys(offers, ALL),
        customer=kit.customer(persona),
        now=kit.now,
    )


def _keys(items: list[Any]) -> list[tuple[str, str]]:
    return [(i.plugin, i.key) for i in items]


def test_every_inventory_slot_is_present_even_when_empty(kit: Any) -> None:
    """With no offers at all, every slot of the inventory is in the response, empty."""
    assert _assemble(kit, {}) == {slot: [] for slot in default_slots()}


def test_offers_without_the_slot_scope_are_dropped(kit: Any) -> None:
    """A plugin lacking slot:home.popup loses its popup offers but keeps its banner ones."""
    offers = {"p": [kit.offer("home.popup", "pop"), kit.offer("home.banner", "ban")]}
    slots = _assemble(kit, offers, granted={"p": frozenset({"slot:home.banner"})})
    assert slots["home.popup/v1"] == []
    assert _keys(slots["home.banner/v1"]) == [("p", "ban")]


def test_slots_outside_the_inventory_are_ignored(kit: Any) -> None:
    """Offers for a slot the platform did not configure never appear."""
    inventory = {"home.banner/v1": SlotConfig(capacity=5)}
    slots = _assemble(
        kit, {"p": [kit.offer("home.notice", "n"), kit.offer("home.banner/v1", "b")]}, inventory=inventory
    )
    assert set(slots) == {"home.banner/v1"}
    assert _keys(slots["home.banner/v1"]) == [("p", "b")]


def test_priority_ranks_with_a_stable_tie_break(kit: Any) -> None:
    """Higher priority first; equal priority ordered by plugin id then key."""
    offers = {
        "zeta": [kit.offer("home.kingkong", "a", priority=500)],
        "alpha": [
            kit.offer("home.kingkong", "y", priority=100),
            kit.offer("home.kingkong", "x", priority=100),
        ],
        "beta": [
            kit.offer("home.kingkong", "m", priority=100),
            kit.offer("home.kingkong", "top", priority=900),
        ],
    }
    slots = _assemble(kit, offers)
    assert _keys(slots["home.kingkong/v1"]) == [
        ("beta", "top"),
        ("zeta", "a"),
        ("alpha", "x"),
        ("alpha", "y"),
        ("beta", "m"),
    ]


def test_capacity_and_per_plugin_share(kit: Any) -> None:
    """A slot holds at most its capacity and at most per_plugin items from one plugin."""
    inventory = {"home.banner/v1": SlotConfig(capacity=3, per_plugin=2)}
    offers = {
        "big": [kit.offer("home.banner", f"b{i}", priority=900 - i) for i in range(5)],
        "mid": [kit.offer("home.banner", "m1", priority=500), kit.offer("home.banner", "m2", priority=400)],
        "small": [kit.offer("home.banner", "s1", priority=10)],
    }
    slots = _assemble(kit, offers, inventory=inventory)
    assert _keys(slots["home.banner/v1"]) == [("big", "b0"), ("big", "b1"), ("mid", "m1")]


def test_validity_window_is_respected(kit: Any) -> None:
    """Offers not yet valid or already expired are dropped; valid_until is exclusive."""
    now = kit.now
    offers = {
        "p": [
            kit.offer("home.notice", "future", valid_from=now + timedelta(minutes=1)),
            kit.offer("home.notice", "expired", valid_until=now - timedelta(minutes=1)),
            kit.offer("home.notice", "ends-now", valid_until=now),
            kit.offer("home.notice", "starts-now", valid_from=now, valid_until=now + timedelta(days=1)),
        ]
    }
    slots = _assemble(kit, offers, inventory={"home.notice/v1": SlotConfig(capacity=5, per_plugin=5)})
    assert _keys(slots["home.notice/v1"]) == [("p", "starts-now")]


def test_naive_datetimes_are_read_as_utc(kit: Any) -> None:
    """A window written without an offset is compared as UTC instead of crashing the page."""
    naive_now = kit.now.replace(tzinfo=None)
    offers = {
        "p": [
            kit.offer(
                "home.notice",
                "naive",
                valid_from=naive_now - timedelta(hours=1),
                valid_until=naive_now + timedelta(hours=1),
            )
        ]
    }
    assert _keys(_assemble(kit, offers)["home.notice/v1"]) == [("p", "naive")]


def test_windows_in_another_zone_compare_by_instant(kit: Any) -> None:
    """A window written at +08:00 opens and closes at the same instants as its UTC spelling."""
    china = timezone(timedelta(hours=8))
    now = kit.now.astimezone(china)
    offers = {
        "p": [
            kit.offer("home.notice", "open", valid_from=now, valid_until=now + timedelta(microseconds=1)),
            kit.offer("home.notice", "not-yet", valid_from=now + timedelta(microseconds=1)),
            kit.offer("home.notice", "closed", valid_until=now),
        ]
    }
    slots = _assemble(kit, offers, inventory={"home.notice/v1": SlotConfig(capacity=5, per_plugin=5)})
    assert _keys(slots["home.notice/v1"]) == [("p", "open")]


def test_targeting_filters_by_segment_branch_and_locale(kit: Any) -> None:
    """Only offers whose targeting admits the customer (mass segment, branch 0755, zh-CN) remain."""
    offers = {
        "p": [
            kit.offer("home.kingkong", "everyone"),
            kit.offer("home.kingkong", "mass", targeting=Targeting(segments=frozenset({"mass"}))),
            kit.offer("home.kingkong", "affluent", targeting=Targeting(segments=frozenset({"affluent"}))),
            kit.offer("home.kingkong", "shanghai", targeting=Targeting(branches=frozenset({"021"}))),
            kit.offer(
                "home.kingkong",
                "shenzhen-en",
                targeting=Targeting(branches=frozenset({"0755"}), locales=frozenset({"en"})),
            ),
        ]
    }
    slots = _assemble(kit, offers, inventory={"home.kingkong/v1": SlotConfig(capacity=10, per_plugin=10)})
    assert sorted(k for _, k in _keys(slots["home.kingkong/v1"])) == ["everyone", "mass"]


def test_duplicate_keys_from_one_plugin_keep_the_first(kit: Any) -> None:
    """The same plugin offering the same key twice in a slot shows it once."""
    offers = {
        "p": [kit.offer("home.banner", "same", priority=100), kit.offer("home.banner", "same", priority=900)]
    }
    assert _keys(_assemble(kit, offers)["home.banner/v1"]) == [("p", "same")]


def test_items_carry_display_fields(kit: Any) -> None:
    """An item carries plugin, key, title, subtitle, image and action from the offer."""
    offer = kit.offer("home.banner", "b", subtitle=kit.text("副标题"), image="https://img.example.com/b.png")
    [item] = _assemble(kit, {"p": [offer]})["home.banner/v1"]
    assert (item.plugin, item.key, item.title, item.subtitle, item.image, item.action) == (
        "p",
        "b",
        offer.title,
        offer.subtitle,
        offer.image,
        offer.action,
    )


def test_one_offer_shown_by_two_plugins_is_credited_to_each(kit: Any) -> None:
    """Items are remembered per offer object; the same (shared, validated) offer from two plugins still
    makes one item per plugin, and a later page gets the same items again."""
    shared = kit.offer("home.banner", "same")
    offers = {"a": [shared], "b": [shared]}
    first = _assemble(kit, offers)["home.banner/v1"]
    again = _assemble(kit, offers)["home.banner/v1"]
    assert _keys(first) == [("a", "same"), ("b", "same")]
    assert [i.plugin for i in again] == ["a", "b"]
    assert again == first


def test_frequency_caps_trim_capped_slots_only(kit: Any) -> None:
    """The popup cap (1 per window) removes the popup once shown; other slots are untouched."""
    inventory = default_slots()
    assert set(capped_slots(inventory)) == {"home.popup/v1"}
    slots = _assemble(kit, {"p": [kit.offer("home.popup", "pop"), kit.offer("home.banner", "b")]})
    assert _keys(apply_frequency_caps(slots, {}, inventory)["home.popup/v1"]) == [("p", "pop")]
    capped = apply_frequency_caps(slots, {"home.popup/v1": 1, "home.banner/v1": 99}, inventory)
    assert capped["home.popup/v1"] == []
    assert _keys(capped["home.banner/v1"]) == [("p", "b")]
    assert apply_frequency_caps(slots, {"home.popup/v1": 7}, inventory)["home.popup/v1"] == []
