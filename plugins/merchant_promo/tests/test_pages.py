"""The coupon page: its terms, what is left, and whether this customer can claim it (and why not)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import pytest
from fulcrum_merchant_promo.availability import stock_key
from fulcrum_merchant_promo.catalogue import by_id
from fulcrum_merchant_promo.pages import page
from fulcrum_merchant_promo.redeem import REDEEM_COUPON
from fulcrum_sdk import Page
from fulcrum_sdk.context import CustomerRecords, ScopedData
from fulcrum_sdk.errors import DataUnavailable
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PluginHarness

MakeHarness = Callable[..., PluginHarness]


def _terms(page: Page | None) -> dict[str, str]:
    assert page is not None
    return {line.label.zh_CN: line.value.zh_CN for line in page.sections[0].lines if line.value}


def test_a_local_coupon_shows_its_terms_and_can_be_claimed(make_harness: MakeHarness) -> None:
    """A Shenzhen customer opening a Shenzhen coupon: merchant, deal, city, window, stock, limit, 可领取."""
    page = make_harness("young_professional").page("coupons/SZ-TEA-10")
    assert page is not None
    assert page.title.zh_CN == "湾畔茶饮：满30减10"
    assert _terms(page) == {
        "商户": "湾畔茶饮", "优惠": "满30减10", "适用城市": "深圳", "有效期": "2026-01-01 至 2027-06-30",
        "剩余": "500 张", "每人限领": "2 张，您已领 0 张", "状态": "可领取",
    }


def test_claiming_updates_what_is_left_and_the_customers_share(make_harness: MakeHarness) -> None:
    """After claiming both of a customer's coupons the page says so, and the stock is one fewer each."""
    harness = make_harness("young_professional")
    for key in ("k-1", "k-2"):
        claimed = harness.execute(REDEEM_COUPON, {"coupon_id": "SZ-TEA-10"}, idempotency_key=key)
        assert claimed.status == "succeeded"
    terms = _terms(harness.page("coupons/SZ-TEA-10"))
    assert terms["剩余"] == "498 张"
    assert terms["每人限领"] == "2 张，您已领 2 张"
    assert terms["状态"] == "您已领满"


def test_another_citys_coupon_says_where_it_is_valid(make_harness: MakeHarness) -> None:
    """A Shanghai customer sees a Shenzhen coupon's terms and why it is not theirs to claim."""
    status = _terms(make_harness("young_family").page("coupons/SZ-TEA-10"))["状态"]
    assert status == "仅限深圳使用，您所在城市为上海"


def test_without_the_city_consent_the_page_asks_for_it_instead_of_guessing(make_harness: MakeHarness) -> None:
    """No consent to the city: the terms still show, and the status says what to allow."""
    terms = _terms(make_harness(consented=()).page("coupons/SZ-TEA-10"))
    assert terms["商户"] == "湾畔茶饮"
    assert terms["状态"] == "仅限深圳使用；授权读取所在城市后即可领取"


def test_consents_that_could_not_be_read_are_no_prompt_to_allow_the_city(make_harness: MakeHarness) -> None:
    """The host could not read the customer's consents: the page stops (the host answers a 503 to
    retry) instead of asking a customer who may well have consented to allow their city."""
    harness = make_harness(consented=())
    ctx = harness.context()
    records = CustomerRecords(harness.provider, harness.record.id)
    unknown = ScopedData.over(records, ctx.plugin_id, harness.scopes, frozenset(), consent_unknown=True)
    with pytest.raises(DataUnavailable):
        asyncio.run(page(msgspec.structs.replace(ctx, data=unknown), "coupons/SZ-TEA-10"))


def test_sold_out_and_expired_coupons_say_so(make_harness: MakeHarness, storage: MemoryStorage) -> None:
    """Stock gone: 已抢光; past its window: 已过期 (checked first, as redeeming does)."""
    coupon = by_id("SZ-ROAST-30")
    assert coupon is not None
    storage.add(stock_key(coupon), coupon.stock)
    assert _terms(make_harness().page("coupons/SZ-ROAST-30"))["状态"] == "已抢光"
    later = make_harness(now=datetime(2027, 7, 1, tzinfo=UTC)).page("coupons/SZ-ROAST-30")
    assert _terms(later)["状态"] == "已过期"


def test_unknown_coupons_and_paths_have_no_page(make_harness: MakeHarness) -> None:
    """An id the catalogue does not list, or any other path, is ``None`` (404)."""
    harness = make_harness()
    for path in ("coupons/SZ-NOPE-1", "coupons/", "coupons", "merchants/x", "SZ-TEA-10"):
        assert harness.page(path) is None


def test_every_coupon_link_the_plugin_hands_out_opens_its_page(make_harness: MakeHarness) -> None:
    """Banners, search hits and feed cards link to pages that exist."""
    harness = make_harness()
    prefix = "fulcrum://merchant-promo/"
    items = [*harness.home_slot_offers(), *harness.search("茶饮"), *harness.feed_items("life")]
    links = {i.action.uri for i in items if i.action.uri.startswith(prefix)}
    assert links
    for uri in links:
        assert harness.page(uri.removeprefix(prefix)) is not None, uri
