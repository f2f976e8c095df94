"""The precomputed city index and UTC windows behind the display hooks agree with the catalogue's rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import fulcrum_merchant_promo
import pytest
from fulcrum_merchant_promo.availability import window
from fulcrum_merchant_promo.catalogue import CITY_NAMES, by_id, coupons
from fulcrum_sdk.localtime import local_date
from fulcrum_sdk.testing import PERSONAS, PluginHarness

MakeHarness = Callable[..., PluginHarness]
TICK = timedelta(microseconds=1)
PANDA = by_id("CD-PANDA-20")  # featured, Chengdu, opens 2027-01-01 00:00 China time


def _banner_keys(harness: PluginHarness) -> set[str]:
    return {o.key for o in harness.home_slot_offers()}


@pytest.mark.parametrize(
    ("moment", "shown"),
    [
        pytest.param(lambda c: c.valid_from - TICK, False, id="just-before-opening"),
        pytest.param(lambda c: c.valid_from, True, id="at-opening"),
        pytest.param(lambda c: c.valid_until, True, id="at-closing"),
        pytest.param(lambda c: c.valid_until + TICK, False, id="just-after-closing"),
    ],
)
def test_window_edges_are_inclusive_whatever_the_clocks_zone(
    make_harness: MakeHarness, moment: Callable[..., datetime], shown: bool
) -> None:
    """A coupon shows from its first to its last microsecond, with ``now`` in UTC as the host passes it."""
    assert PANDA is not None
    now = moment(PANDA).astimezone(UTC)
    assert (window(PANDA, now) is None) is shown
    assert ("coupon-CD-PANDA-20" in _banner_keys(make_harness("retiree", now=now))) is shown


@pytest.mark.parametrize("persona", sorted(PERSONAS))
@pytest.mark.parametrize(
    "now",
    [
        datetime(2026, 11, 28, 6, tzinfo=UTC),
        datetime(2027, 3, 1, tzinfo=UTC),
        datetime(2025, 6, 1, tzinfo=UTC),
    ],
)
def test_banners_are_the_city_s_open_featured_coupons(persona: str, now: datetime) -> None:
    """For every persona and date the banners are exactly what the catalogue's rules select, in order."""
    record = PERSONAS[persona]
    harness = PluginHarness(fulcrum_merchant_promo, persona=record, now=now)
    city = record.city.code if record.city else None
    expected = [
        c for c in coupons() if c.city == city and c.featured and window(c, now) is None and c.stock > 0
    ]
    offers = harness.home_slot_offers()
    assert [o.key for o in offers] == [f"coupon-{c.id}" for c in expected]
    for offer, coupon in zip(offers, expected, strict=True):
        until = local_date(coupon.valid_until).isoformat()
        name = CITY_NAMES[coupon.city]
        assert offer.subtitle is not None
        assert offer.subtitle.zh_CN == f"仅限{name.zh_CN} · 剩余 {coupon.stock} 张 · 有效期至 {until}"
        assert offer.subtitle.en == f"{name.en} only · {coupon.stock} left · until {until}"
        assert offer.title == coupon.headline
        assert offer.action.uri == coupon.uri


def test_without_the_city_nothing_is_offered(make_harness: MakeHarness) -> None:
    """No consent to ``location:city``: no banner, hit or card, whatever the index holds."""
    harness = make_harness(consented=())
    assert harness.home_slot_offers() == []
    assert harness.search("优惠") == []
    assert harness.feed_items("life") == []



def test_the_banners_exclusive_end_is_the_first_moment_the_coupon_cannot_be_redeemed(
    make_harness: MakeHarness,
) -> None:
    """The host treats ``valid_until`` as exclusive (shown while ``now < valid_until``); the coupon's own
    end is inclusive. So the banner's end is the first expired moment: shown exactly while redeemable."""
    assert PANDA is not None
    last = PANDA.valid_until.astimezone(UTC)
    offers = make_harness("retiree", now=last).home_slot_offers()
    end = next(o for o in offers if o.key == "coupon-CD-PANDA-20").valid_until
    assert end is not None
    assert window(PANDA, end - TICK) is None
    assert window(PANDA, end) == "expired"
