"""The seeded coupon catalogue is well formed and covers the demo branches' cities."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

from fulcrum_merchant_promo.catalogue import CITY_NAMES, by_id, coupons


def test_every_demo_city_has_coupons() -> None:
    """深圳, 上海 and 成都 each have at least two coupons, and no coupon is for another city."""
    cities = Counter(c.city for c in coupons())
    assert set(cities) == {"440300", "310000", "510100"} == set(CITY_NAMES)
    assert min(cities.values()) >= 2


def test_ids_are_unique_and_found() -> None:
    """Each id appears once and ``by_id`` finds it; an unknown id is ``None``."""
    ids = [c.id for c in coupons()]
    assert len(ids) == len(set(ids))
    assert all(by_id(i) is not None for i in ids)
    assert by_id("XX-NOPE") is None


def test_windows_and_amounts_are_sane() -> None:
    """Windows open before they close, are timezone-aware, and money is whole fen."""
    for c in coupons():
        assert c.valid_from.tzinfo is not None
        assert c.valid_from < c.valid_until
        assert isinstance(c.face_value_fen, int)
        assert c.face_value_fen > 0
        assert c.per_customer_limit <= c.stock


def test_texts_are_bilingual() -> None:
    """Merchant names and titles are in zh-CN and en."""
    for c in coupons():
        assert c.merchant.en
        assert c.title.en


def test_the_catalogue_is_read_and_indexed_as_the_plugin_loads() -> None:
    """Importing the plugin (what the host does as it loads it) reads and indexes the catalogue, so a
    fresh worker's first page does not parse it on the event loop the page's other plugins wait on."""
    probe = (
        "import fulcrum_merchant_promo\n"
        "from fulcrum_merchant_promo import availability, catalogue\n"
        "print(catalogue.coupons.cache_info().currsize,"
        " availability._featured_by_city.cache_info().currsize)\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, a fixed probe
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["1", "1"]
