"""``GET /v1/home`` with campaign plugins (``home_slot_campaigns``): offers computed once per audience,
filtered per customer by the page's rules, degraded like any plugin, gone when the plugin is off."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fulcrum_core.campaigns import CAMPAIGNS, HOOK, CampaignStore
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.dispatch import context as context_module
from fulcrum_core.dispatch.breaker import BreakerConfig
from fulcrum_core.plugins import PluginPolicy
from fulcrum_core.settings import Deadlines
from fulcrum_sdk.context import AudienceContext
from fulcrum_sdk.models import SlotOffer, Targeting

BANNER, KINGKONG = "home.banner/v1", "home.kingkong/v1"
CUSTOMER = "synthetic-young-professional"  # segment mass, branch 0755
# The waits under test are the plugins' own; a loaded machine must not end a good call first.
RELAXED = {"deadlines": Deadlines(home_slot_offers=5_000), "home_budget_ms": 10_000}


def _keys(body: dict[str, Any], slot: str) -> list[tuple[str, str]]:
    return [(i["plugin"], i["key"]) for i in body["slots"][slot]]


def _shown(body: dict[str, Any]) -> set[str]:
    return {i["key"] for items in body["slots"].values() for i in items}


class Counting:
    """A campaign hook returning ``offers``, recording the context of every call."""

    def __init__(self, offers: list[SlotOffer]) -> None:
        self.offers = offers
        self.calls: list[AudienceContext] = []

    def hook(self) -> Any:
        def home_slot_campaigns(ctx: AudienceContext) -> list[SlotOffer]:
            self.calls.append(ctx)
            return self.offers

        return home_slot_campaigns


class Clock:
    """The campaign store's clock, moved by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _with_clock(app: Any, ttl_ms: int = 60_000) -> Clock:
    clock = Clock()
    app.runtime.extras[CAMPAIGNS] = CampaignStore(app.runtime.dispatcher, ttl_ms, clock=clock)
    return clock


def test_campaign_offers_are_shown_with_the_plugins_own(make_app: Any, kit: Any) -> None:
    """A campaign-only plugin's offers fill their slots; a plugin with both hooks contributes both."""
    camp = Counting([kit.offer("home.banner", "spring", priority=500)])
    both = kit.plugin(
        "both", home_slot_offers=lambda ctx: [kit.offer("home.kingkong", "mine")],
        home_slot_campaigns=lambda ctx: [kit.offer("home.kingkong", "everyone")],
    )
    app = make_app(kit.plugin("camp", home_slot_campaigns=camp.hook()), both, **RELAXED)
    body = app.get("/v1/home").json()
    assert _keys(body, BANNER) == [("camp", "spring")]
    assert sorted(_keys(body, KINGKONG)) == [("both", "everyone"), ("both", "mine")]
    assert body["degraded"] == []


def test_the_plugin_gets_an_audience_context_without_a_customer(make_app: Any, kit: Any) -> None:
    """The host calls the hook with an ``AudienceContext``: its grant and settings, nothing about the
    customer whose page triggered the call."""
    camp = Counting([])
    app = make_app(kit.plugin("camp", home_slot_campaigns=camp.hook()), **RELAXED)
    assert app.get("/v1/home").status_code == 200
    (ctx,) = camp.calls
    assert isinstance(ctx, AudienceContext)
    assert ctx.scopes == app.runtime.plugins.loaded["camp"].granted
    assert not hasattr(ctx, "customer")
    assert CUSTOMER not in repr(ctx)


def test_one_call_serves_many_pages_and_customers_until_the_ttl(make_app: Any, kit: Any) -> None:
    """Within the TTL the plugin is called once for every page of every customer; past it, once more."""
    camp = Counting([kit.offer("home.banner", "spring")])
    app = make_app(kit.plugin("camp", home_slot_campaigns=camp.hook()), **RELAXED)
    clock = _with_clock(app)
    others = [app.token(c) for c in ("synthetic-retiree", "synthetic-young-family")]
    for token in [None, *others, None]:
        assert _keys(app.get("/v1/home", token=token).json(), BANNER) == [("camp", "spring")]
    assert len(camp.calls) == 1
    clock.now += 60
    assert _keys(app.get("/v1/home").json(), BANNER) == [("camp", "spring")]
    assert len(camp.calls) == 2


def test_a_ttl_of_zero_calls_the_plugin_on_every_page(make_app: Any, kit: Any) -> None:
    """``campaign_ttl_ms = 0`` turns reuse off."""
    camp = Counting([kit.offer("home.banner", "spring")])
    app = make_app(kit.plugin("camp", home_slot_campaigns=camp.hook()), campaign_ttl_ms=0, **RELAXED)
    for _ in range(3):
        assert _keys(app.get("/v1/home").json(), BANNER) == [("camp", "spring")]
    assert len(camp.calls) == 3


@pytest.mark.parametrize(("scopes", "shown"), [
    (["slot:home.banner"], {"everyone"}),  # no profile:basic: a segment matches nobody
    (["slot:home.banner", "profile:basic"], {"everyone", "mass"}),
])
def test_targeting_is_read_as_the_plugin_sees_the_customer(
    make_app: Any, kit: Any, scopes: list[str], shown: set[str]
) -> None:
    """A campaign targeted at a segment reaches the customer only when the plugin holds
    ``profile:basic``: it never had a context this request, yet is judged by what one would show."""
    offers = [
        kit.offer("home.banner", "everyone"),
        kit.offer("home.banner", "mass", targeting=Targeting(segments=frozenset({"mass"}))),
        kit.offer("home.banner", "affluent", targeting=Targeting(segments=frozenset({"affluent"}))),
    ]
    app = make_app(kit.plugin("camp", scopes=scopes, home_slot_campaigns=lambda ctx: offers), **RELAXED)
    assert _shown(app.get("/v1/home").json()) == shown


@pytest.mark.parametrize(("consented", "shown"), [(True, {"everyone", "mass"}), (False, {"everyone"})])
def test_a_partners_targeting_needs_the_customers_consent(
    make_app: Any, kit: Any, consented: bool, shown: set[str]
) -> None:
    """A partner's segment-targeted campaign reaches only customers who consented to share
    ``profile:basic`` with it."""
    offers = [
        kit.offer("home.banner", "everyone"),
        kit.offer("home.banner", "mass", targeting=Targeting(segments=frozenset({"mass"}))),
    ]
    plugin = kit.plugin(
        "partner", kind="partner", scopes=["slot:home.banner"], optional=["profile:basic"],
        home_slot_campaigns=lambda ctx: offers,
    )
    app = make_app(plugin, consent_cache_ms=0, **RELAXED)
    if consented:
        later = datetime.now(UTC) + timedelta(days=30)
        ConsentStore(app.runtime.db).grant(CUSTOMER, "partner", ["profile:basic"], "推荐", later)
    assert _shown(app.get("/v1/home").json()) == shown


def test_the_validity_window_is_applied_on_every_page(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held offers are filtered by each page's own time: one that starts later appears when it starts,
    one that ends goes, without calling the plugin again."""
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    camp = Counting([
        kit.offer("home.banner", "now", valid_until=now + hour),
        kit.offer("home.banner", "later", valid_from=now + hour),
        kit.offer("home.banner", "ended", valid_until=now - hour),
    ])
    app = make_app(kit.plugin("camp", home_slot_campaigns=camp.hook()), **RELAXED)
    assert _shown(app.get("/v1/home").json()) == {"now"}

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return now + 2 * hour

    monkeypatch.setattr(context_module, "datetime", Later)
    assert _shown(app.get("/v1/home").json()) == {"later"}
    assert len(camp.calls) == 1


def test_failing_campaign_plugins_are_degraded_and_the_page_is_served(
    make_app: Any, kit: Any, release: threading.Event
) -> None:
    """A campaign plugin that raises, returns garbage, hangs in a thread or in a task is left out of the
    page (200), listed as degraded under its hook; the others are shown."""

    def boom(ctx: Any) -> Any:
        raise RuntimeError("secret campaign detail")

    async def sleeps(ctx: Any) -> Any:
        await asyncio.sleep(3600)

    app = make_app(
        kit.plugin("good", home_slot_campaigns=lambda ctx: [kit.offer("home.notice", "n")]),
        kit.plugin("boom", home_slot_campaigns=boom),
        kit.plugin("garbage", home_slot_campaigns=lambda ctx: {"not": "a list"}),
        kit.plugin("stuck-thread", home_slot_campaigns=lambda ctx: release.wait()),
        kit.plugin("stuck-task", home_slot_campaigns=sleeps),
        deadlines=Deadlines(home_slot_offers=300), home_budget_ms=10_000,
    )
    response = app.get("/v1/home")
    assert response.status_code == 200
    body = response.json()
    assert _keys(body, "home.notice/v1") == [("good", "n")]
    assert sorted((d["plugin"], d["hook"], d["reason"]) for d in body["degraded"]) == [
        ("boom", HOOK, "error"),
        ("garbage", HOOK, "invalid"),
        ("stuck-task", HOOK, "timeout"),
        ("stuck-thread", HOOK, "timeout"),
    ]
    assert "secret campaign detail" not in response.text


def test_the_breaker_counts_campaign_calls(make_app: Any, kit: Any) -> None:
    """Failed campaign calls open the plugin's breaker for the hook: then it is not called at all,
    and pages list it as rejected."""
    calls: list[int] = []

    def boom(ctx: Any) -> Any:
        calls.append(1)
        raise RuntimeError("down")

    app = make_app(
        kit.plugin("boom", home_slot_campaigns=boom),
        breaker=BreakerConfig(sliding_window_size=2, minimum_number_of_calls=2), **RELAXED,
    )
    reasons = [app.get("/v1/home").json()["degraded"][0]["reason"] for _ in range(4)]
    assert reasons == ["error", "error", "rejected", "rejected"]
    assert len(calls) == 2
    body = app.get("/v1/plugins", token=app.token("ops", ["platform:read"], kind="staff")).json()
    assert [p["hooks"] for p in body["plugins"] if p["id"] == "boom"] == [[HOOK]]
    (stat,) = [s for s in body["stats"] if s["plugin"] == "boom"]
    assert (stat["hook"], stat["error"], stat["rejected"]) == (HOOK, 2, 2)


def test_a_suspended_plugins_campaigns_leave_the_next_page(make_app: Any, kit: Any) -> None:
    """Campaigns held for a plugin the registry suspends, or whose slot scope it withholds, are not
    shown on the next page, though they are still in the store."""
    camp = Counting([kit.offer("home.banner", "spring"), kit.offer("home.kingkong", "icon")])
    scopes = ["slot:home.banner", "slot:home.kingkong"]
    app = make_app(kit.plugin("camp", scopes=scopes, home_slot_campaigns=camp.hook()), **RELAXED)
    assert _shown(app.get("/v1/home").json()) == {"spring", "icon"}
    grant = frozenset({"slot:home.banner", "slot:home.kingkong"})
    app.runtime.plugins.set_policy({"camp": PluginPolicy(active=False, granted_scopes=grant)})
    assert _shown(app.get("/v1/home").json()) == set()
    app.runtime.plugins.set_policy(
        {"camp": PluginPolicy(active=True, granted_scopes=frozenset({"slot:home.banner"}))}
    )
    assert _shown(app.get("/v1/home").json()) == {"spring"}


def test_metrics_count_campaign_calls_under_their_hook(make_app: Any, kit: Any) -> None:
    """``/metrics`` counts the campaign call like any hook call, under ``home_slot_campaigns``."""
    app = make_app(kit.plugin("camp", home_slot_campaigns=lambda ctx: []), **RELAXED)
    for _ in range(3):
        assert app.get("/v1/home").status_code == 200
    text = app.get("/metrics", token=app.token("ops", ["platform:read"], kind="staff")).text
    assert 'fulcrum_plugin_calls_total{hook="home_slot_campaigns",outcome="ok",plugin="camp"} 1.0' in text


def test_a_miss_waits_within_the_pages_plugin_deadline(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A campaign miss is waited for until the page's plugin deadline counted from when the page's
    calls start, alongside them, not after them: a slow plugin and a slow campaign cost one deadline."""
    from fulcrum_core.api import home as home_module

    async def slow(ctx: Any) -> list[SlotOffer]:
        await asyncio.sleep(0.05)
        return []

    app = make_app(
        kit.plugin("slow", home_slot_offers=slow),
        kit.plugin("camp", home_slot_campaigns=lambda ctx: []),
        deadlines=Deadlines(home_slot_offers=2_000), home_budget_ms=10_000,
    )
    seen: dict[str, float] = {}
    call_many = app.runtime.dispatcher.call_many
    collect = home_module.collect

    async def timed_call_many(hook: str, calls: Any, **kwargs: Any) -> Any:
        seen["calls_start"] = asyncio.get_running_loop().time()
        return await call_many(hook, calls, **kwargs)

    async def noted_collect(waiting: Any, offers: Any, until: float) -> Any:
        seen["until"] = until
        return await collect(waiting, offers, until)

    monkeypatch.setattr(app.runtime.dispatcher, "call_many", timed_call_many)
    monkeypatch.setattr(home_module, "collect", noted_collect)
    assert app.get("/v1/home").json()["degraded"] == []
    assert seen["until"] <= seen["calls_start"] + 2.0


def test_a_reinstated_plugin_is_asked_again_not_served_what_it_offered_before(
    make_app: Any, kit: Any
) -> None:
    """Campaigns held when the registry suspends a plugin are forgotten: reinstated (the same release
    and grant, so the same loaded plugin) within the TTL, it is called again and its current offers
    are shown, not those from before the suspension."""
    camp = Counting([kit.offer("home.banner", "before")])
    grant = frozenset({"slot:home.banner"})
    plugin = kit.plugin("camp", scopes=["slot:home.banner"], home_slot_campaigns=camp.hook())
    app = make_app(plugin, **RELAXED)
    _with_clock(app)
    assert _shown(app.get("/v1/home").json()) == {"before"}
    app.runtime.plugins.set_policy({"camp": PluginPolicy(active=False, granted_scopes=grant)})
    assert _shown(app.get("/v1/home").json()) == set()
    camp.offers = [kit.offer("home.banner", "after")]
    app.runtime.plugins.set_policy({"camp": PluginPolicy(active=True, granted_scopes=grant)})
    assert _shown(app.get("/v1/home").json()) == {"after"}
    assert len(camp.calls) == 2


def test_a_partners_campaign_call_gets_the_time_to_the_second_only(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner's campaign call is not given the exact instant of the page whose miss started it (as
    its per-customer context is not): that instant, the same for every partner the page calls, would
    link their calls to one page and customer."""
    exact = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return exact

    monkeypatch.setattr(context_module, "datetime", Frozen)
    camp = Counting([])
    plugin = kit.plugin(
        "partner", kind="partner", scopes=["slot:home.banner"], home_slot_campaigns=camp.hook()
    )
    app = make_app(plugin, **RELAXED)
    assert app.get("/v1/home").status_code == 200
    (ctx,) = camp.calls
    assert ctx.now == exact.replace(microsecond=0)


def test_the_host_ends_a_campaign_call_in_flight_before_it_closes_the_database(
    make_app: Any, kit: Any, monkeypatch: pytest.MonkeyPatch, log_records: Any
) -> None:
    """A campaign call still running at shutdown (its page gave up waiting for it) is cancelled after the
    host's shutdown wait, and has ended before the database closes; the host says so."""
    import fulcrum_core.app as host
    from fulcrum_core.data.db import Database

    monkeypatch.setattr(host, "SHUTDOWN_THREADS_S", 0.2)  # the wait is not under test: its end is
    events: list[str] = []
    dispose = Database.dispose

    def disposing(self: Database) -> None:
        events.append("database closed")
        dispose(self)

    monkeypatch.setattr(Database, "dispose", disposing)
    records = log_records(host.__name__)

    async def home_slot_campaigns(ctx: AudienceContext) -> list[SlotOffer]:
        events.append("call started")
        try:
            await asyncio.Event().wait()  # hangs, within a deadline longer than the test
        finally:
            events.append("call ended")
        return []

    app = make_app(
        kit.plugin("camp", home_slot_campaigns=home_slot_campaigns),
        deadlines=Deadlines(home_slot_offers=60_000), home_budget_ms=1_500,  # generous: a loaded machine
    )
    body = app.get("/v1/home").json()
    assert [(d["plugin"], d["reason"]) for d in body["degraded"]] == [("camp", "timeout")]
    app.client.__exit__(None, None, None)
    assert events == ["call started", "call ended", "database closed"]
    assert any("1 campaign call(s) still running" in r.getMessage() for r in records)
