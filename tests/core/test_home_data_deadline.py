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
from fulcrum_core.data.warmup import NOBODY
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


def _hold(monkeypatch: pytest.MonkeyPatch, cls: type, name: str, gate: threading.Event) -> threading.Event:
    """Make ``cls.name`` wait for ``gate`` before doing its work; the returned event is set once it did."""
    original = getattr(cls, name)
    landed = threading.Event()

    def held(self: Any, *args: Any) -> Any:
        gate.wait(10)
        try:
            return original(self, *args)
        finally:
            landed.set()

    monkeypatch.setattr(cls, name, held)
    return landed


def _partner(kit: Any) -> Any:
    """A partner plugin whose banner and search hit need the customer's profile (consented)."""

    async def home_slot_offers(ctx: Any) -> Any:
        return [kit.offer("home.banner", f"segment-{ctx.data.profile().segment}")]

    async def search(ctx: Any, query: str) -> Any:
        return [kit.hit(f"segment-{ctx.data.profile().segment}")]

    return kit.plugin(
        PARTNER, kind="partner", scopes=["profile:basic", "slot:home.banner", "search:contribute"],
        home_slot_offers=home_slot_offers, search=search,
    )


def _banner_keys(page: dict[str, Any]) -> list[str]:
    return [item["key"] for item in page["slots"]["home.banner/v1"]]


@pytest.mark.parametrize("path", ["/v1/home", "/v1/search?q=x"])
def test_consents_that_do_not_arrive_leave_the_partner_out_not_the_page_waiting(
    make_app: Callable[..., Any], kit: Any, gate: threading.Event, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The consent read hangs: the response comes after about the data budget with the partner, which
    reads consented data, listed as degraded (never served as if the customer had not consented);
    the read, once it lands, serves the next response from the cache."""
    app = make_app(_partner(kit), data_budget_ms=100, consent_cache_ms=60_000, sqlite_reads_on_loop=False)
    ConsentStore(app.runtime.db).grant(
        CUSTOMER, PARTNER, frozenset({"profile:basic"}), "测试", datetime.now(UTC) + timedelta(days=30)
    )
    landed = _hold(monkeypatch, ConsentStore, "_live", gate)
    token = app.token(CUSTOMER)
    page, took = _timed(lambda: app.get(path, token=token))
    assert page.status_code == 200, page.text
    assert [(d["plugin"], d["reason"]) for d in page.json()["degraded"]] == [(PARTNER, "error")]
    assert took < 5.0  # the read is held for 10 s; a loaded machine took 2.3 s over a page
    assert not app.runtime.dispatcher.breaker_open(PARTNER, "home_slot_offers")

    gate.set()
    assert landed.wait(5)
    time.sleep(0.05)  # the landed read is stored by the event loop
    again = app.get(path, token=token).json()
    assert again["degraded"] == []
    keys = _banner_keys(again) if path == "/v1/home" else [h["key"] for h in again["items"]]
    assert keys == ["segment-mass"]


def test_a_partner_guarded_by_allows_is_degraded_not_served_unconsented(
    make_app: Callable[..., Any], kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner guarding its profile read with ``allows`` (as the guide says) is left out and listed
    as degraded when the consents could not be read, its breaker not charged; before, ``allows`` said
    no and the partner's offer for a customer without consent was served as if that were known."""

    async def home_slot_offers(ctx: Any) -> Any:
        segment = ctx.data.profile().segment if ctx.data.allows("profile:basic") else "anyone"
        return [kit.offer("home.banner", f"segment-{segment}")]

    app = make_app(kit.plugin(PARTNER, kind="partner", scopes=["profile:basic", "slot:home.banner"],
                              home_slot_offers=home_slot_offers))

    def down(self: ConsentStore, customer_ref: str, at: datetime) -> list[Any]:
        raise ConnectionError("database away")

    monkeypatch.setattr(ConsentStore, "_live", down)
    page = app.get("/v1/home", token=app.token(CUSTOMER))
    assert page.status_code == 200, page.text
    assert [(d["plugin"], d["reason"]) for d in page.json()["degraded"]] == [(PARTNER, "error")]
    assert "segment-anyone" not in _banner_keys(page.json())
    assert not app.runtime.dispatcher.breaker_open(PARTNER, "home_slot_offers")


def test_profile_and_records_share_one_data_deadline(make_app: Callable[..., Any], kit: Any) -> None:
    """The profile takes 300 ms and holdings 500 ms of a 600 ms data budget: each alone would fit, both
    together do not, so the holdings reader is left out and the profile reader is shown. (The margins
    are wide on both sides: 200 ms over for holdings, 300 ms under for the profile. With 40 + 120 ms
    against 150 ms, a loaded machine's event loop noticed the deadline more than 10 ms late and took
    the holdings as arrived in time.)"""

    class _Bank(_BankSystems):
        def _ask(self, what: str) -> None:
            self.calls.append((what, threading.current_thread().name))
            time.sleep({"profile": 0.3, "holdings": 0.5}.get(what, 0))

    bank = _Bank()
    app = make_app(
        _reader(kit, "needs-holdings", "holdings:read", lambda ctx: ctx.data.holdings()),
        _reader(kit, "needs-profile", "profile:basic", lambda ctx: ctx.data.profile()),
        provider_=bank, data_budget_ms=600, home_budget_ms=10_000,  # the page's own budget out of it
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
    assert took < 4.0  # under the 5 s data budget, with room for a loaded machine


def test_a_hanging_impression_store_empties_the_capped_slot_and_records_nothing(
    make_app: Callable[..., Any], kit: Any, gate: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The frequency cap's read hangs: the page answers within its budget with the popup withheld and
    the banner shown; the read, when it lands, records no impression of the popup nobody saw, so the
    next page shows it."""
    count = ImpressionStore.count_since
    app = make_app(
        kit.plugin(
            "popper",
            home_slot_offers=lambda ctx: [kit.offer("home.popup", "pop"), kit.offer("home.banner", "b")],
        ),
        home_budget_ms=300,
    )
    token = app.token(CUSTOMER)
    landed = _hold(monkeypatch, ImpressionStore, "count_since", gate)
    page, took = _timed(lambda: app.get("/v1/home", token=token))
    assert page.status_code == 200, page.text
    assert page.json()["slots"]["home.popup/v1"] == []
    assert _banner_keys(page.json()) == ["b"]
    assert took < 5.0  # the held read waits 10 s; a loaded machine took 2.3 s over this page

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


def test_a_write_still_running_at_the_budget_shows_the_item_and_is_kept(
    make_app: Callable[..., Any], kit: Any, gate: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap's count answers but recording the impression hangs past the budget: the popup is shown
    (the write is under way), and once the write lands it counts, so the next page holds the popup
    back. Shown and recorded never disagree."""

    async def popup(ctx: Any) -> Any:
        return [kit.offer("home.popup", "pop")]

    # The budget is wide enough for a loaded machine's count and plugin call (200 ms once left the
    # popup out on a busy machine); the held write still waits far past it.
    app = make_app(kit.plugin("popper", home_slot_offers=popup), home_budget_ms=1_500)
    token = app.token(CUSTOMER)
    landed = _hold(monkeypatch, ImpressionStore, "record", gate)
    page, took = _timed(lambda: app.get("/v1/home", token=token))
    assert [i["key"] for i in page.json()["slots"]["home.popup/v1"]] == ["pop"]
    assert took < 5.0  # the held read waits 10 s; a loaded machine took 2.3 s over this page

    gate.set()
    assert landed.wait(5)
    since = datetime.now(UTC) - timedelta(days=1)
    assert ImpressionStore(app.runtime.db).count_since(CUSTOMER, "home.popup/v1", since) == 1
    assert app.get("/v1/home", token=token).json()["slots"]["home.popup/v1"] == []


@pytest.mark.parametrize("cache_ms", [0, 60_000])
def test_hanging_consent_reads_tie_up_a_bounded_number_of_threads(
    make_app: Callable[..., Any], kit: Any, gate: threading.Event, monkeypatch: pytest.MonkeyPatch,
    cache_ms: int,
) -> None:
    """Pages for many customers while the consent read hangs, with the cache off (every request reads)
    and on (one read per customer): each page leaves the partner out in time, and at most 16 reads
    wait on the database; past that a read fails at once."""
    asked: list[str] = []

    def held(self: ConsentStore, customer_ref: str, at: Any) -> Any:
        if customer_ref == NOBODY:  # the app's startup warming the read: no request's
            return []
        asked.append(customer_ref)
        gate.wait(10)
        return []

    monkeypatch.setattr(ConsentStore, "_live", held)
    app = make_app(_partner(kit), data_budget_ms=20, consent_cache_ms=cache_ms, sqlite_reads_on_loop=False)
    customers = sorted(PERSONAS)
    pages = [
        app.get("/v1/home", token=app.token(PERSONAS[customers[n % len(customers)]].id)) for n in range(24)
    ]
    assert all(p.status_code == 200 for p in pages)
    assert all([d["plugin"] for d in p.json()["degraded"]] == [PARTNER] for p in pages)
    assert 1 <= len(asked) <= 16


def test_hanging_storage_reads_tie_up_a_bounded_number_of_threads(
    make_app: Callable[..., Any], kit: Any, gate: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plugin reading its storage while the database hangs: every page is served without it, and at
    most 32 reads wait on the database (an abandoned read keeps its thread); past that a read is
    unavailable at once."""
    from fulcrum_core.data.storage import SqlPluginStorage

    asked: list[str] = []

    def held(self: SqlPluginStorage, key: str) -> Any:
        if key == NOBODY:  # the app's startup warming the read: no request's
            return None
        asked.append(key)
        gate.wait(10)
        return None

    async def reads(ctx: Any) -> Any:
        return [kit.offer("home.banner", f"seen-{await ctx.storage.aget(ctx.request_id)}")]

    monkeypatch.setattr(SqlPluginStorage, "_read_doc", held)
    reader = kit.plugin("reader", home_slot_offers=reads)
    app = make_app(reader, home_budget_ms=60, sqlite_reads_on_loop=False)  # a held read: in threads
    token = app.token(CUSTOMER)
    pages = [app.get("/v1/home", token=token) for _ in range(40)]
    assert all(p.status_code == 200 for p in pages)
    assert all([d["plugin"] for d in p.json()["degraded"]] == ["reader"] for p in pages)
    assert 1 <= len(asked) <= 32
