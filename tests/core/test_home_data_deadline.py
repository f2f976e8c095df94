"""``GET /v1/home`` stays within its budget when the database or the bank is slow, not only when plugins are.

Everything read about the customer before the plugins run (profile, consents, records) shares one
deadline: ``data_budget_ms``, or the page's ``home_budget_ms`` when that ends sooner. The frequency
caps' impression store gets what is left of the page's budget. Reads are held on events the tests
release at the end, so nothing here depends on how fast the machine is, except the bounds on how long
a page took, which are several times the budgets they check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.impressions import ImpressionStore
from fulcrum_sdk.testing import PERSONAS

from tests.core.test_blocking_provider import _BankSystems, _reader

CUSTOMER = PERSONAS["young_professional"].id
PARTNER = "fund-partner"


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """Held reads wait on this; it is set at teardown so no thread outlives the test."""
    event = threading.Event()
    yield event
    event.set()


def _timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def _partner(kit: Any) -> Any:
    """A partner plugin whose banner says whether the customer's consent reached it."""

    async def home_slot_offers(ctx: Any) -> Any:
        return [kit.offer("home.banner", f"consented-{ctx.data.allows('profile:basic')}")]

    return kit.plugin(
        PARTNER, kind="partner", scopes=["profile:basic", "slot:home.banner"],
        home_slot_offers=home_slot_offers,
    )


def _banner_keys(page: dict[str, Any]) -> list[str]:
    return [item["key"] for item in page["slots"]["home.banner/v1"]]


def test_consents_that_do_not_arrive_leave_the_partner_without_data_not_the_page_waiting(
    make_app: Callable[..., Any], kit: Any, gate: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The consent read hangs: the page answers after about the data budget, the partner runs without
    the customer's data, and the read, once it lands, serves the next page from the cache."""
    app = make_app(_partner(kit), data_budget_ms=100, consent_cache_ms=60_000)
    ConsentStore(app.runtime.db).grant(
        CUSTOMER, PARTNER, frozenset({"profile:basic"}), "测试", datetime.now(UTC) + timedelta(days=30)
    )
    live = ConsentStore._live
    landed = threading.Event()

    def held(self: ConsentStore, *args: Any) -> Any:
        gate.wait(10)
        try:
            return live(self, *args)
        finally:
            landed.set()

    monkeypatch.setattr(ConsentStore, "_live", held)
    token = app.token(CUSTOMER)
    page, took = _timed(lambda: app.get("/v1/home", token=token))
    assert page.status_code == 200, page.text
    assert _banner_keys(page.json()) == ["consented-False"]
    assert page.json()["degraded"] == []
    assert took < 2.0  # the read is held for 10 s

    gate.set()
    assert landed.wait(5)
    time.sleep(0.05)  # the landed read is stored by the event loop
    assert _banner_keys(app.get("/v1/home", token=token).json()) == ["consented-True"]


def test_profile_and_records_share_one_data_deadline(make_app: Callable[..., Any], kit: Any) -> None:
    """The profile takes 40 ms and holdings 120 ms of a 150 ms data budget: each alone would fit, both
    together do not, so the holdings reader is left out and the profile reader is shown."""

    class _Bank(_BankSystems):
        def _ask(self, what: str) -> None:
            self.calls.append((what, threading.current_thread().name))
            time.sleep({"profile": 0.04, "holdings": 0.12}.get(what, 0))

    bank = _Bank()
    app = make_app(
        _reader(kit, "needs-holdings", "holdings:read", lambda ctx: ctx.data.holdings()),
        _reader(kit, "needs-profile", "profile:basic", lambda ctx: ctx.data.profile()),
        provider_=bank, data_budget_ms=150,
    )
    token = app.token(CUSTOMER)
    page = app.get("/v1/home", token=token)
    assert page.status_code == 200, page.text
    body = page.json()
    assert [(d["plugin"], d["reason"]) for d in body["degraded"]] == [("needs-holdings", "error")]
    assert [i["plugin"] for i in body["slots"]["home.banner/v1"]] == ["needs-profile"]


def test_the_page_budget_bounds_the_data_budget(make_app: Callable[..., Any], kit: Any) -> None:
    """A data budget longer than the page's: a hanging record costs the page its budget, not more."""
    bank = _BankSystems(hang="holdings")
    app = make_app(
        _reader(kit, "needs-holdings", "holdings:read", lambda ctx: ctx.data.holdings()),
        provider_=bank, data_budget_ms=5_000, home_budget_ms=200,
    )
    token = app.token(CUSTOMER)
    try:
        page, took = _timed(lambda: app.get("/v1/home", token=token))
    finally:
        bank.release.set()
    assert page.status_code == 200, page.text
    assert [(d["plugin"], d["reason"]) for d in page.json()["degraded"]] == [("needs-holdings", "error")]
    assert took < 2.5  # half the data budget


def test_a_hanging_impression_store_empties_the_capped_slot_and_records_nothing(
    make_app: Callable[..., Any], kit: Any, gate: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frequency cap's read hangs: the page answers within its budget with the popup withheld and
    the banner shown; the read, when it lands, records no impression of the popup nobody saw, so the
    next page shows it."""
    count = ImpressionStore.count_since
    landed = threading.Event()

    def held(self: ImpressionStore, *args: Any) -> int:
        gate.wait(10)
        try:
            return count(self, *args)
        finally:
            landed.set()

    app = make_app(
        kit.plugin(
            "popper",
            home_slot_offers=lambda ctx: [kit.offer("home.popup", "pop"), kit.offer("home.banner", "b")],
        ),
        home_budget_ms=300,
    )
    token = app.token(CUSTOMER)
    monkeypatch.setattr(ImpressionStore, "count_since", held)
    page, took = _timed(lambda: app.get("/v1/home", token=token))
    assert page.status_code == 200, page.text
    assert page.json()["slots"]["home.popup/v1"] == []
    assert _banner_keys(page.json()) == ["b"]
    assert took < 2.0

    gate.set()
    assert landed.wait(5)
    monkeypatch.setattr(ImpressionStore, "count_since", count)
    since = datetime.now(UTC) - timedelta(days=1)
    time.sleep(0.1)  # the abandoned thread would record right after its read
    assert ImpressionStore(app.runtime.db).count_since(CUSTOMER, "home.popup/v1", since) == 0
    again = app.get("/v1/home", token=token).json()
    assert [i["key"] for i in again["slots"]["home.popup/v1"]] == ["pop"]


def test_a_hanging_impression_store_ties_up_a_bounded_number_of_threads(
    make_app: Callable[..., Any], kit: Any, gate: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Page after page while the impression store hangs: every page is served with the popup withheld,
    and at most 16 threads wait on the store; past that no thread asks it at all."""
    asked: list[str] = []

    def held(self: ImpressionStore, *args: Any) -> int:
        asked.append(threading.current_thread().name)
        gate.wait(10)
        return 0

    async def popup(ctx: Any) -> Any:  # never waits: the page's time is the store's
        return [kit.offer("home.popup", "pop")]

    app = make_app(kit.plugin("popper", home_slot_offers=popup), home_budget_ms=50)
    token = app.token(CUSTOMER)
    monkeypatch.setattr(ImpressionStore, "count_since", held)
    pages = [app.get("/v1/home", token=token) for _ in range(24)]
    assert all(p.status_code == 200 and p.json()["slots"]["home.popup/v1"] == [] for p in pages)
    assert 1 <= len(asked) <= 16
