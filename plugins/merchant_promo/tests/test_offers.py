"""Banners, search hits and the life feed: the customer's city only, redeemable coupons only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from fulcrum_merchant_promo.home import home_slot_offers
from fulcrum_merchant_promo.redeem import REDEEM_COUPON
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PluginHarness

MakeHarness = Callable[..., PluginHarness]


def test_banners_are_the_featured_coupons_of_the_customers_city(make_harness: MakeHarness) -> None:
    """A Shenzhen customer sees Shenzhen's featured, redeemable coupons; the expired cinema coupon is gone."""
    offers = make_harness("young_professional").home_slot_offers()
    assert {o.key for o in offers} == {"coupon-SZ-TEA-10", "coupon-SZ-ROAST-30"}
    assert all(o.slot == "home.banner/v1" for o in offers)
    tea = next(o for o in offers if o.key == "coupon-SZ-TEA-10")
    assert tea.subtitle is not None
    assert tea.subtitle.zh_CN == "仅限深圳 · 剩余 500 张 · 有效期至 2027-06-30"
    assert tea.valid_until == datetime(2027, 6, 30, 15, 59, 59, 1, tzinfo=UTC)  # the last second, inclusive
    # In UTC, as ctx.now is: the host compares equal tzinfos without asking either for its offset.
    assert tea.valid_from is not None
    assert tea.valid_from.tzinfo is UTC
    assert tea.valid_until.tzinfo is UTC


def test_personas_in_different_cities_see_different_banners(make_harness: MakeHarness) -> None:
    """Shanghai and Chengdu customers see only their own city's deals; a not-yet-open coupon is hidden."""
    shanghai = {o.key for o in make_harness("young_family").home_slot_offers()}
    chengdu = {o.key for o in make_harness("retiree").home_slot_offers()}
    assert shanghai == {"coupon-SH-CAFE-12"}
    assert chengdu == {"coupon-CD-HOTPOT-50"}  # CD-PANDA-20 opens in 2027


def test_a_sold_out_coupon_leaves_the_banner(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """When the stock is gone the banner, the hit and the card all disappear."""
    storage.add("stock-taken:CD-HOTPOT-50", 3)
    harness = make_harness("retiree")
    assert harness.home_slot_offers() == []
    assert harness.search("火锅") == []
    assert "coupon-CD-HOTPOT-50" not in {i.key for i in harness.feed_items("life")}


def test_banner_counts_down_the_stock(make_harness: MakeHarness) -> None:
    """After a redemption the banner shows one coupon fewer."""
    harness = make_harness("young_professional")
    harness.execute(REDEEM_COUPON, {"coupon_id": "SZ-TEA-10"})
    tea = next(o for o in harness.home_slot_offers() if o.key == "coupon-SZ-TEA-10")
    assert tea.subtitle is not None
    assert "剩余 499 张" in tea.subtitle.zh_CN


def test_search_by_merchant_name_and_category(make_harness: MakeHarness) -> None:
    """A merchant's name, its category in Chinese, and the category in English all find it."""
    harness = make_harness("young_professional")
    assert [h.key for h in harness.search("南山烧腊")] == ["coupon-SZ-ROAST-30"]
    assert harness.search("南山烧腊")[0].relevance == 1.0
    assert [h.key for h in harness.search("超市")] == ["coupon-SZ-MART-20"]
    assert [h.key for h in harness.search("coffee")] == ["coupon-SZ-TEA-10"]
    assert all(h.kind == "merchant" for h in harness.search("优惠"))


def test_search_never_finds_another_citys_merchant(make_harness: MakeHarness) -> None:
    """A Shenzhen customer searching a Chengdu merchant gets nothing."""
    assert make_harness("young_professional").search("蓉城火锅") == []


def test_search_without_a_match_is_empty(make_harness: MakeHarness) -> None:
    """An unrelated query contributes nothing."""
    assert make_harness("young_professional").search("理财") == []


def test_life_feed_lists_the_citys_redeemable_offers(make_harness: MakeHarness) -> None:
    """The life column holds every redeemable coupon of the city, as offers, and nothing for other columns."""
    harness = make_harness("young_family")
    items = harness.feed_items("life")
    assert {i.key for i in items} == {"coupon-SH-CAFE-12", "coupon-SH-NOODLE-15", "coupon-SH-METRO-5"}
    assert all(i.kind == "offer" for i in items)
    metro = next(i for i in items if i.key == "coupon-SH-METRO-5")
    assert metro.summary is not None
    assert "无门槛" in metro.summary.zh_CN
    assert harness.feed_items("wealth") == []


def test_placements_vanish_without_their_scopes(make_harness: MakeHarness) -> None:
    """With only the city granted the plugin offers no banner, hit or card."""
    harness = make_harness(scopes={"location:city"})
    assert harness.home_slot_offers() == []
    assert harness.search("茶饮") == []
    assert harness.feed_items("life") == []


def test_pages_with_the_same_stock_share_their_banners(
    make_harness: MakeHarness, storage: MemoryStorage
) -> None:
    """Two pages with the same stock left get the same banner objects (the host then neither re-checks
    nor re-wraps them); once the stock moves, the banner says so."""
    harness = make_harness("young_professional")
    first, second = (asyncio.run(home_slot_offers(harness.context())) for _ in range(2))
    assert len(first) == 2
    assert all(a is b for a, b in zip(first, second, strict=True))
    storage.add("stock-taken:SZ-TEA-10", 1)
    tea = next(o for o in asyncio.run(home_slot_offers(harness.context())) if o.key == "coupon-SZ-TEA-10")
    assert tea.subtitle is not None
    assert "剩余 499 张" in tea.subtitle.zh_CN
