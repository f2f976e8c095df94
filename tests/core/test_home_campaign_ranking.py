"""Home assembly with campaigns ranked once per set of held campaigns: the same page as ranking all."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import msgspec
from fulcrum_core.assembly.home import HomeItem, assemble_home
from fulcrum_core.settings import SlotConfig
from fulcrum_sdk.context import Customer
from fulcrum_sdk.models import Action, LocalizedText, SlotOffer, Targeting
from fulcrum_sdk.scopes import slot_scope

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SLOTS = ("home.banner/v1", "home.kingkong/v1", "home.popup/v1", "home.notice/v1")
OFFERED_SLOTS = (*SLOTS, "home.other/v1")  # one no inventory has
PLUGINS = ("alpha", "beta", "pin", "zeta", "mid", "omega")
KEYS = ("k1", "k2", "k3", "k4")
PRIORITIES = (0, 100, 100, 100, 500, 1000)
CUSTOMER = Customer(id="c-1", segment="mass", branch="0755", locale="zh-CN")
UNSHARED = Customer(id="pairwise-1", segment="", branch="", locale="zh-CN")
_titles = count()


def _joined(
    offers: Mapping[str, Sequence[SlotOffer]], campaigns: Mapping[str, tuple[SlotOffer, ...]]
) -> dict[str, Sequence[SlotOffer]]:
    """What the home page handed assemble_home before: each plugin's offers, then its campaigns."""
    joined: dict[str, Sequence[SlotOffer]] = dict(offers)
    for plugin, held in campaigns.items():
        own = joined.get(plugin)
        joined[plugin] = [*own, *held] if own else held
    return joined


def _offer(rng: random.Random) -> SlotOffer:
    """A random offer: slots in and out of the inventory, tied priorities, repeated keys, validity
    windows around now (either edge), targeting that admits the customer or not."""
    window = rng.random() < 0.3
    targeted = rng.random() < 0.3
    return SlotOffer(
        slot=rng.choice(OFFERED_SLOTS),
        key=rng.choice(KEYS),
        title=LocalizedText(zh_CN=f"标题 {next(_titles)}"),  # tells apart offers sharing a key
        action=Action(uri="fulcrum://open/x"),
        priority=rng.choice(PRIORITIES),
        valid_from=rng.choice((None, NOW - timedelta(hours=1), NOW, NOW + timedelta(seconds=1)))
        if window else None,
        valid_until=rng.choice((None, NOW, NOW + timedelta(hours=1), NOW - timedelta(seconds=1)))
        if window else None,
        targeting=Targeting(
            segments=frozenset(rng.sample(("mass", "affluent"), rng.randint(0, 1))),
            branches=frozenset(rng.sample(("0755", "0010"), rng.randint(0, 1))),
        ) if targeted else None,
    )


def _page(rng: random.Random, plugins: Sequence[str]) -> dict[str, object]:
    """One customer's page: own offers (some plugins none), pins, what each plugin sees, the time."""
    offers = {p: [_offer(rng) for _ in range(rng.randint(0, 4))] for p in plugins if rng.random() < 0.6}
    pins: dict[str, dict[str, int]] = {}
    for slot in rng.sample(SLOTS, rng.randint(0, 2)):
        pins[slot] = {p: rng.randint(1, 6) for p in rng.sample(PLUGINS, rng.randint(1, 3))}
    unshared = frozenset(rng.sample(list(plugins), rng.randint(0, len(plugins))))
    return {
        "offers": offers,
        "pins": pins or None,
        "seen_as": rng.choice((None, lambda p: UNSHARED if p in unshared else CUSTOMER)),
        "now": rng.choice((NOW, NOW - timedelta(seconds=1), NOW.replace(tzinfo=None))),
    }


def _world(rng: random.Random) -> tuple[dict[str, SlotConfig], dict[str, frozenset[str]], list[str]]:
    """An inventory (capacities and shares small enough to bind), grants (some missing), plugins."""
    inventory = {
        slot: SlotConfig(capacity=rng.randint(1, 6), per_plugin=rng.randint(1, 3))
        for slot in rng.sample(SLOTS, rng.randint(1, len(SLOTS)))
    }
    plugins = rng.sample(PLUGINS, rng.randint(1, len(PLUGINS)))
    granted = {
        p: frozenset(slot_scope(s) for s in rng.sample(SLOTS, rng.randint(0, len(SLOTS))))
        for p in plugins if rng.random() < 0.9
    }
    return inventory, granted, plugins


def _both(
    page: dict[str, object],
    campaigns: dict[str, tuple[SlotOffer, ...]],
    inventory: dict[str, SlotConfig],
    granted: dict[str, frozenset[str]],
) -> tuple[dict[str, list[HomeItem]], dict[str, list[HomeItem]]]:
    offers = page["offers"]
    assert isinstance(offers, dict)
    common = {
        "inventory": inventory, "granted": granted, "customer": CUSTOMER, "now": page["now"],
        "pins": page["pins"], "seen_as": page["seen_as"],
    }
    reference = assemble_home(_joined(offers, campaigns), **common)  # type: ignore[arg-type]
    return reference, assemble_home(offers, campaigns=campaigns, **common)  # type: ignore[arg-type]


def test_ranked_campaigns_give_the_page_ranking_everything_gives() -> None:
    """Over random worlds and pages, the page is item for item the one ranking every offer together
    gives: with held campaigns seen before and not, a refresh of one plugin's tuple, two sets of
    tuples taking turns (two branches' settings) and a plugin whose campaigns are missing."""
    rng = random.Random(20261129)
    differing = 0
    for _ in range(400):
        inventory, granted, plugins = _world(rng)
        first = {p: tuple(_offer(rng) for _ in range(rng.randint(0, 6))) for p in plugins}
        refreshed = rng.choice(plugins)
        second = {**first, refreshed: tuple(_offer(rng) for _ in range(rng.randint(0, 6)))}
        missing = dict(first)
        missing.pop(rng.choice(plugins))
        for campaigns in (first, first, first, second, second, first, second, first, missing, missing):
            page = _page(rng, plugins)
            reference, ranked = _both(page, campaigns, inventory, granted)
            assert ranked == reference
            offers = page["offers"]
            assert isinstance(offers, dict)
            differing += reference != assemble_home(
                offers, inventory=inventory, granted=granted, customer=CUSTOMER, now=NOW,
            )
    assert differing > 1000  # the campaigns mattered on most pages


def _one(slot: str, key: str, priority: int = 100, **extra: object) -> SlotOffer:
    return SlotOffer(
        slot=slot, key=key, title=LocalizedText(zh_CN=key), action=Action(uri="fulcrum://open/x"),
        priority=priority, **extra,  # type: ignore[arg-type]
    )


BANNER = "home.banner/v1"
INVENTORY = {BANNER: SlotConfig(capacity=3, per_plugin=2)}
GRANT = frozenset({slot_scope(BANNER)})


def _keys(slots: dict[str, list[HomeItem]]) -> list[tuple[str, str]]:
    return [(item.plugin, item.key) for item in slots[BANNER]]


def test_a_refreshed_tuple_is_ranked_anew() -> None:
    """A plugin's campaigns replaced by a refresh are what the next page shows, not the ranking of
    the tuple before."""
    granted = {"p": GRANT}
    before = {"p": (_one(BANNER, "old"),)}
    after = {"p": (_one(BANNER, "new"),)}
    for campaigns, key in ((before, "old"), (before, "old"), (after, "new"), (after, "new"), (before, "old")):
        slots = assemble_home(
            {}, campaigns=campaigns, inventory=INVENTORY, granted=granted, customer=CUSTOMER, now=NOW
        )
        assert _keys(slots) == [("p", key)]


def test_new_grants_or_slots_are_ranked_anew() -> None:
    """The same held tuple under a grant without the slot, or an inventory without it, shows nothing."""
    campaigns = {"p": (_one(BANNER, "b"),)}
    granted = {"p": GRANT}
    notice = {"home.notice/v1": SlotConfig(capacity=3)}
    for _ in range(2):  # the second time from a ranking
        kept = assemble_home(
            {}, campaigns=campaigns, inventory=INVENTORY, granted=granted, customer=CUSTOMER, now=NOW
        )
        assert _keys(kept) == [("p", "b")]
    ungranted = {"p": frozenset[str]()}
    for _ in range(2):
        assert assemble_home(
            {}, campaigns=campaigns, inventory=INVENTORY, granted=ungranted, customer=CUSTOMER, now=NOW
        ) == {BANNER: []}
        assert assemble_home(
            {}, campaigns=campaigns, inventory=notice, granted=granted, customer=CUSTOMER, now=NOW
        ) == {"home.notice/v1": []}


def test_own_offer_comes_before_the_same_campaign_key_only_while_it_is_shown() -> None:
    """A key a plugin offers both ways shows its own offer (and priority); when its own one has
    expired, the campaign one stands in with the campaign's priority."""
    campaigns = {"p": (_one(BANNER, "k", priority=900),), "q": (_one(BANNER, "q", priority=500),)}
    own = {"p": [_one(BANNER, "k", priority=1)]}
    expired = {"p": [_one(BANNER, "k", priority=1, valid_until=NOW)]}
    granted = {"p": GRANT, "q": GRANT}

    def page(offers: dict[str, list[SlotOffer]]) -> list[tuple[str, str]]:
        return _keys(assemble_home(
            offers, campaigns=campaigns, inventory=INVENTORY, granted=granted, customer=CUSTOMER, now=NOW
        ))

    assert page(own) == [("q", "q"), ("p", "k")]
    assert page(expired) == [("p", "k"), ("q", "q")]


def test_pages_after_the_first_check_only_the_campaigns_they_reach() -> None:
    """Once held tuples come again they are ranked, and a campaign offer ranked past a full slot is
    never checked against the customer (its targeting is not read); tuples new on every page (nothing
    held) are checked as before."""
    top = _one(BANNER, "t", priority=900)
    granted = {"top": GRANT, "low": GRANT}
    inventory = {BANNER: SlotConfig(capacity=1)}
    asked: list[str] = []

    def seen_as(plugin: str) -> Customer:
        asked.append(plugin)
        return CUSTOMER

    def low() -> tuple[SlotOffer, ...]:
        return (_one(BANNER, "l", priority=1, targeting=Targeting(segments=frozenset({"mass"}))),)

    held = {"top": (top,), "low": low()}
    for page in range(8):
        campaigns = held if page < 4 else {"top": (top,), "low": low()}
        asked.clear()
        slots = assemble_home(
            {}, campaigns=campaigns, inventory=inventory, granted=granted, customer=CUSTOMER, now=NOW,
            seen_as=seen_as,
        )
        assert _keys(slots) == [("top", "t")]
        assert asked == ([] if page in (1, 2, 3) else ["low"])


def test_the_same_mapping_again_is_answered_by_identity() -> None:
    """The campaign store hands pages like the last one the same mapping: its ranking is found by
    identity, and an equal mapping, other grants or another inventory are looked up, not taken for it."""
    from fulcrum_core.assembly.home import _ranked_campaigns

    campaigns = {"p": (_one(BANNER, "b"),), "q": (_one(BANNER, "c", 200),)}
    granted = {"p": GRANT, "q": GRANT}
    assert _ranked_campaigns(campaigns, INVENTORY, granted) is None  # seen once: not ranked yet
    ranked = _ranked_campaigns(campaigns, INVENTORY, granted)
    assert ranked is not None
    assert _ranked_campaigns(campaigns, INVENTORY, granted) is ranked
    assert _ranked_campaigns(dict(campaigns), INVENTORY, granted) is ranked  # same tuples, looked up
    assert _ranked_campaigns(campaigns, INVENTORY, {"p": GRANT}) is None  # other grants: anew
    other = {BANNER: SlotConfig(capacity=3), "home.notice/v1": SlotConfig(capacity=3)}
    assert _ranked_campaigns(campaigns, other, granted) is None  # other slots: anew
    refreshed = {**campaigns, "p": (_one(BANNER, "b2"),)}
    assert _ranked_campaigns(refreshed, INVENTORY, granted) is None
    assert _ranked_campaigns(refreshed, INVENTORY, granted) is not ranked


def test_pages_with_the_same_own_offers_give_the_page_ranking_everything_gives() -> None:
    """Customers whose own offers recur (the host hands the same checked offers again) get, page after
    page, the page ranking every offer together gives: under campaigns with and without validity
    windows and targeting, with pins and without, and under a second inventory with the same slots
    but other capacities and shares."""
    rng = random.Random(20261201)
    for _ in range(150):
        inventory, granted, plugins = _world(rng)
        resized = {
            slot: SlotConfig(capacity=rng.randint(1, 6), per_plugin=rng.randint(1, 3)) for slot in inventory
        }
        plain = rng.random() < 0.7
        campaigns = {
            p: tuple(
                msgspec.structs.replace(o, valid_from=None, valid_until=None, targeting=None) if plain else o
                for o in (_offer(rng) for _ in range(rng.randint(0, 6)))
            )
            for p in plugins
        }
        pool = [_page(rng, plugins) for _ in range(3)]
        for _ in range(12):
            page = rng.choice(pool)
            if rng.random() < 0.5:
                page = {**page, "pins": None}
            slots = rng.choice((inventory, resized))
            reference, ranked = _both(page, campaigns, slots, granted)
            assert ranked == reference


def test_a_slot_whose_campaigns_need_no_check_is_filled_once_per_own_offers(monkeypatch: Any) -> None:
    """Where no held campaign has a validity window or targeting, a page with the same own offers as
    an earlier one is answered from it without merging again; other own offers are merged anew."""
    from fulcrum_core.assembly import home as assembly

    merged: list[int] = []
    take = assembly._take

    def counted(*args: Any) -> list[HomeItem]:
        merged.append(1)
        return take(*args)

    monkeypatch.setattr(assembly, "_take", counted)
    campaigns = {"p": (_one(BANNER, "a", 300), _one(BANNER, "b", 100)), "q": (_one(BANNER, "c", 200),)}
    granted = {"p": GRANT, "q": GRANT, "own": GRANT, "twin": GRANT}
    mine = {"own": [_one(BANNER, "o", 250)]}
    other = {"own": [_one(BANNER, "o", 50)]}
    twin = {"twin": mine["own"]}  # the same offer object, from another plugin
    pages = [
        _keys(assemble_home(
            offers, campaigns=campaigns, inventory=INVENTORY, granted=granted, customer=CUSTOMER, now=NOW
        ))
        for offers in ({}, {}, mine, mine, mine, other, mine, twin)
    ]
    assert pages[2:5] == [[("p", "a"), ("own", "o"), ("q", "c")]] * 3
    assert pages[5] == [("p", "a"), ("q", "c"), ("p", "b")]
    assert pages[6] == pages[2]
    assert pages[7] == [("p", "a"), ("twin", "o"), ("q", "c")]
    # The first page is ranked from the tuples seen once; then one merge per own offers seen.
    assert len(merged) == 4
