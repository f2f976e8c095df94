"""The pension's and the merchant promotions' home offers for every demo customer, pinned: the hooks may
get faster, never different.

``first_party_home_offers.json`` holds what the hooks returned, through the SDK's ``PluginHarness``,
for every seeded customer under several clocks (the year-end notice off, on, and past the turn of
the year in China), grants (with and without ``profile:basic``) and stored counters (none; stock
taken and contributions made). Regenerate it only for a change meant to alter the offers:
``uv run python tests/e2e/test_first_party_home_offers.py``.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import fulcrum_merchant_promo
import fulcrum_pension
import msgspec
from fulcrum_core.data.provider import DemoDataProvider
from fulcrum_merchant_promo.availability import stock_key
from fulcrum_merchant_promo.catalogue import coupons
from fulcrum_pension.cap import baseline_key, counter_key
from fulcrum_sdk.data import CustomerRecord
from fulcrum_sdk.models import SlotOffer
from fulcrum_sdk.storage import MemoryStorage
from fulcrum_sdk.testing import PluginHarness, load_manifest_beside

PINNED = Path(__file__).with_name("first_party_home_offers.json")

CLOCKS = {
    "june": datetime(2026, 6, 15, 2, 0, tzinfo=UTC),
    "november": datetime(2026, 11, 28, 6, 0, tzinfo=UTC),
    "last-hour-of-2026": datetime(2026, 12, 31, 15, 30, tzinfo=UTC),
    "first-hour-of-2027": datetime(2026, 12, 31, 16, 30, tzinfo=UTC),
}
PLUGINS: dict[str, ModuleType] = {"pension": fulcrum_pension, "merchant-promo": fulcrum_merchant_promo}


def _storage(customers: list[CustomerRecord]) -> MemoryStorage:
    """Counters as a busy day leaves them: stock taken (some coupons sold out), contributions made
    here by some customers (with and without a baseline), other amounts in each year the clocks fall in."""
    storage = MemoryStorage()
    for i, coupon in enumerate(coupons()):
        taken = coupon.stock if i % 4 == 1 else (i * 7) % (coupon.stock + 1)
        if taken:
            storage.add(stock_key(coupon), taken)
    for i, record in enumerate(customers):
        for year in (2026, 2027):
            if i % 3:
                storage.add(counter_key(record.id, year), (i * 137_000 + year % 2 * 250_000) % 1_300_000 or 1)
            if i % 5 == 2:
                storage.add(baseline_key(record.id, year), 1 + i * 10_000 + year % 2 * 30_000)
    return storage


def _offers() -> dict[str, Any]:
    """Every plugin's offers by plugin, grant, clock and customer, as JSON builtins."""
    customers = DemoDataProvider.from_seed().customers()
    stored = {"empty": MemoryStorage(), "busy": _storage(customers)}
    drawn: dict[str, Any] = {}
    for name, plugin in PLUGINS.items():
        scopes = load_manifest_beside(plugin).scopes
        for grant, granted in {"all": scopes.all, "required": frozenset(scopes.required)}.items():
            for state, storage in stored.items():
                for clock, now in CLOCKS.items():
                    for record in customers:
                        harness = PluginHarness(
                            plugin, persona=record, scopes=granted, storage=storage, now=now
                        )
                        offers = msgspec.to_builtins(harness.home_slot_offers())
                        drawn[f"{name} {grant} {state} {clock} {record.id}"] = offers
    return drawn


def _as_offers(offers: list[Any]) -> list[SlotOffer]:
    return msgspec.convert(offers, list[SlotOffer])


def test_the_offers_are_the_pinned_ones() -> None:
    """Each plugin's home offers for every demo customer, grant, stored state and clock are exactly
    those pinned (and the pinned set is not trivial: banners, entries and notices are all in it)."""
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    drawn = json.loads(json.dumps(_offers()))  # tuples become lists, as in the file
    assert drawn.keys() == pinned.keys()
    # Compared as offers: a window is an instant, whatever zone it is written in (the merchant
    # promotions now give theirs in UTC, as ctx.now is; the file has them at +08:00).
    assert [key for key in drawn if _as_offers(drawn[key]) != _as_offers(pinned[key])] == []
    slots = {offer["slot"] for offers in pinned.values() for offer in offers}
    assert slots == {"home.banner/v1", "home.kingkong/v1", "home.notice/v1"}
    assert sum(map(len, pinned.values())) > 500


if __name__ == "__main__":
    text = json.dumps(_offers(), ensure_ascii=False, indent=1, sort_keys=True)
    PINNED.write_text(text + "\n", encoding="utf-8")
    sys.exit(0)
