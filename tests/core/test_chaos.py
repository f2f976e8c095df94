"""Chaos through HTTP: plugins that raise, hang, return garbage or huge payloads never break /v1/home."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from fulcrum_core.dispatch.breaker import BreakerConfig, BreakerState, StateTransition
from fulcrum_core.dispatch.clock import VirtualClock
from fulcrum_core.settings import Deadlines
from fulcrum_sdk import Page, nonblocking
from fulcrum_sdk.models import LocalizedText
from msgspec.structs import replace

pytestmark = pytest.mark.both_loops  # the host serves on uvloop, or on asyncio's own loop

FAST = Deadlines(home_slot_offers=100)
DEFAULT_NOTICE = ("platform", "platform-welcome")


def _keys(body: dict[str, Any], slot: str) -> list[tuple[str, str]]:
    return [(i["plugin"], i["key"]) for i in body["slots"][slot]]


def _degraded(body: dict[str, Any]) -> dict[str, str]:
    return {d["plugin"]: d["reason"] for d in body["degraded"]}


def test_each_failure_degrades_only_its_plugin(make_app: Any, kit: Any, release: threading.Event) -> None:
    """Raise, hang (sync and async), garbage and huge payloads: 200, good items kept, the rest degraded."""

    async def hangs_async(ctx: Any) -> Any:
        await asyncio.sleep(3600)

    def raises(ctx: Any) -> Any:
        raise RuntimeError("plugin bug")

    async def good_async(ctx: Any) -> Any:
        await asyncio.sleep(0)
        return [kit.offer("home.kingkong", "k-async")]

    huge_title = LocalizedText(zh_CN="长" * 100_000)
    unsendable = LocalizedText(zh_CN="坏\ud800")  # a lone surrogate: no UTF-8 byte sequence says it
    app = make_app(
        kit.plugin("good", home_slot_offers=nonblocking(lambda ctx: [kit.offer("home.banner", "b1")])),
        kit.plugin("good-async", home_slot_offers=good_async),
        kit.plugin("raises", home_slot_offers=raises),
        kit.plugin("hangs-sync", home_slot_offers=lambda ctx: release.wait()),
        kit.plugin("hangs-async", home_slot_offers=hangs_async),
        kit.plugin("garbage", home_slot_offers=lambda ctx: {"banner": "not a list"}),
        kit.plugin("huge-list", home_slot_offers=lambda ctx: [kit.offer("home.banner", "x")] * 10_000),
        kit.plugin(
            "huge-text",
            home_slot_offers=lambda ctx: [replace(kit.offer("home.banner", "t"), title=huge_title)],
        ),
        kit.plugin(
            "surrogate",
            home_slot_offers=lambda ctx: [replace(kit.offer("home.banner", "s"), title=unsendable)],
        ),
        # A frozen struct holding an arbitrary object: even turning it into JSON fails.
        kit.plugin(
            "odd-field",
            home_slot_offers=nonblocking(
                lambda ctx: [replace(kit.offer("home.banner", "o"), title=LocalizedText(zh_CN=object()))]
            ),
        ),
        # Six plugins run in threads and must get to raise or return within the deadline: a loaded
        # machine's threads can miss 100 ms, and one would be a timeout instead of its own failure.
        deadlines=Deadlines(home_slot_offers=1_000), home_budget_ms=10_000,
    )
    response = app.get("/v1/home")
    assert not release.is_set()  # answered while the sync plugin is still blocked
    assert response.status_code == 200
    body = response.json()
    assert _keys(body, "home.banner/v1") == [("good", "b1")]
    assert _keys(body, "home.kingkong/v1") == [("good-async", "k-async")]
    assert _degraded(body) == {
        "raises": "error",
        "hangs-sync": "timeout",
        "hangs-async": "timeout",
        "garbage": "invalid",
        "huge-list": "invalid",
        "huge-text": "invalid",
        "surrogate": "invalid",
        "odd-field": "invalid",
    }
    assert _keys(body, "home.notice/v1") == [DEFAULT_NOTICE]  # platform content fills the empty slot
    assert "plugin bug" not in response.text


def test_page_answers_within_budget_when_every_plugin_hangs(
    make_app: Any, kit: Any, release: threading.Event
) -> None:
    """With every plugin hanging and long deadlines, the overall budget still ends the wait."""

    async def hangs_async(ctx: Any) -> Any:
        await asyncio.sleep(3600)

    app = make_app(
        kit.plugin("hangs-sync", home_slot_offers=lambda ctx: release.wait()),
        kit.plugin("hangs-async", home_slot_offers=hangs_async),
        deadlines=Deadlines(home_slot_offers=60_000),
        home_budget_ms=100,
    )
    response = app.get("/v1/home")
    assert not release.is_set()
    assert response.status_code == 200
    body = response.json()
    assert _degraded(body) == {"hangs-sync": "timeout", "hangs-async": "timeout"}
    assert _keys(body, "home.notice/v1") == [DEFAULT_NOTICE]
    assert all(not items for slot, items in body["slots"].items() if slot != "home.notice/v1")


def test_no_default_content_when_nothing_was_left_out(make_app: Any, kit: Any) -> None:
    """Platform content appears only in a degraded page; a healthy page shows exactly the plugins' items."""
    app = make_app(kit.plugin("good", home_slot_offers=lambda ctx: [kit.offer("home.banner", "b1")]))
    body = app.get("/v1/home").json()
    assert body["degraded"] == []
    assert body["slots"]["home.notice/v1"] == []


def test_slow_only_sometimes_is_degraded_only_when_slow(make_app: Any, kit: Any) -> None:
    """A plugin slow on every other call loses only those calls; the page is 200 each time."""
    calls = [0]

    async def flaky(ctx: Any) -> Any:
        calls[0] += 1
        if calls[0] % 2 == 0:
            await asyncio.sleep(3600)
        return [kit.offer("home.banner", f"b{calls[0]}")]

    app = make_app(kit.plugin("flaky", home_slot_offers=flaky), deadlines=FAST)
    seen = []
    for _ in range(4):
        response = app.get("/v1/home")
        assert response.status_code == 200
        seen.append(_degraded(response.json()).get("flaky", "ok"))
    assert seen == ["ok", "timeout", "ok", "timeout"]


def test_breaker_opens_and_later_closes(make_app: Any, kit: Any) -> None:
    """Failures open the breaker (the plugin is not called); after the open period a good probe closes it."""
    state = {"broken": True, "calls": 0}

    def sometimes_broken(ctx: Any) -> Any:
        state["calls"] += 1
        if state["broken"]:
            raise RuntimeError("down")
        return [kit.offer("home.banner", "back")]

    config = BreakerConfig(
        sliding_window_size=4, minimum_number_of_calls=4, wait_duration_in_open_state_s=30,
        permitted_calls_in_half_open=1,
    )
    app = make_app(  # a deadline its thread cannot miss on a loaded machine: its error is under test
        kit.plugin("wobbly", home_slot_offers=sometimes_broken), breaker=config,
        deadlines=Deadlines(home_slot_offers=5_000), home_budget_ms=10_000,
    )
    clock = VirtualClock()
    app.runtime.dispatcher.resilience.clock = clock
    for _ in range(4):
        assert _degraded(app.get("/v1/home").json()) == {"wobbly": "error"}
    assert app.runtime.dispatcher.breaker_open("wobbly", "home_slot_offers")

    response = app.get("/v1/home")
    assert response.status_code == 200
    assert _degraded(response.json()) == {"wobbly": "rejected"}
    assert state["calls"] == 4  # not called while open

    state["broken"] = False
    clock.advance(30)
    body = app.get("/v1/home").json()  # the half-open probe succeeds
    assert _keys(body, "home.banner/v1") == [("wobbly", "back")]
    assert not app.runtime.dispatcher.breaker_open("wobbly", "home_slot_offers")
    assert app.get("/v1/home").json()["degraded"] == []


def test_nonblocking_plugin_that_overruns_is_dropped_then_skipped(make_app: Any, kit: Any) -> None:
    """A plugin declared nonblocking that blocks past the deadline loses its result and trips its breaker:
    at once when it held the loop twice its deadline or more (every request on the worker waited), with
    the default window and its ten-call minimum."""
    calls = [0]

    @nonblocking
    def liar(ctx: Any) -> Any:
        calls[0] += 1
        time.sleep(0.03)  # breaks its promise: blocks the loop for three times the 10 ms deadline
        return [kit.offer("home.banner", "late")]

    app = make_app(kit.plugin("liar", home_slot_offers=liar), deadlines=Deadlines(home_slot_offers=10))
    first = _degraded(app.get("/v1/home").json()).get("liar")
    [stat] = [s for s in app.runtime.dispatcher.stats.snapshot() if s.plugin == "liar"]
    assert "held the event loop 2x its deadline or more, so its breaker opens" in (stat.last_problem or "")
    later = [_degraded(app.get("/v1/home").json()).get("liar") for _ in range(2)]
    assert [first, *later] == ["timeout", "rejected", "rejected"]
    assert calls[0] == 1


def test_a_last_probe_that_holds_the_loop_reopens_without_closing_first(make_app: Any, kit: Any) -> None:
    """The last half-open probe holds the loop past ``open_on_loop_hold`` deadlines while the probes'
    rates pass (one failure in three): the breaker goes from HALF_OPEN straight back to OPEN. Recorded
    before it was tripped, it closed for an instant first, which metrics and the other workers saw."""
    state = {"hold": True, "calls": 0}

    @nonblocking
    def holder(ctx: Any) -> Any:
        state["calls"] += 1
        if state["hold"]:
            time.sleep(0.15)  # three times the 50 ms deadline, on the loop
        return [kit.offer("home.banner", "held")]

    config = BreakerConfig(wait_duration_in_open_state_s=30, permitted_calls_in_half_open=3)
    app = make_app(
        kit.plugin("holder", home_slot_offers=holder), breaker=config,
        deadlines=Deadlines(home_slot_offers=50), home_budget_ms=10_000,
    )
    clock = VirtualClock()
    app.runtime.dispatcher.resilience.clock = clock
    seen: list[StateTransition] = []
    app.runtime.dispatcher.resilience.get("holder", "home_slot_offers").breaker.add_listener(seen.append)

    assert _degraded(app.get("/v1/home").json()) == {"holder": "timeout"}  # held: opens at once
    clock.advance(30)
    state["hold"] = False
    for _ in range(2):  # two probes that pass
        assert _degraded(app.get("/v1/home").json()) == {}
    state["hold"] = True
    assert _degraded(app.get("/v1/home").json()) == {"holder": "timeout"}  # the last probe holds it
    assert [(e.from_state, e.to_state) for e in seen] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.OPEN),
    ]
    assert _degraded(app.get("/v1/home").json()) == {"holder": "rejected"}
    assert state["calls"] == 4


def test_a_shorter_overrun_or_the_setting_off_only_counts_in_the_window(make_app: Any, kit: Any) -> None:
    """Held under ``open_on_loop_hold`` times the deadline, or with it 0, an overrun is one timeout in the
    breaker's window, as any timeout: the breaker opens once the window's rates say so."""
    calls = [0]

    @nonblocking
    def late(ctx: Any) -> Any:
        calls[0] += 1
        time.sleep(0.02)
        return [kit.offer("home.banner", "late")]

    for hold in (10.0, 0.0):  # 20 ms against 10 ms: far under ten deadlines, and then the setting off
        calls[0] = 0
        config = BreakerConfig(sliding_window_size=2, minimum_number_of_calls=2, open_on_loop_hold=hold)
        plugin = kit.plugin("late", home_slot_offers=late)
        app = make_app(plugin, deadlines=Deadlines(home_slot_offers=10), breaker=config)
        reasons = [_degraded(app.get("/v1/home").json()).get("late") for _ in range(3)]
        assert reasons == ["timeout", "timeout", "rejected"], hold
        assert calls[0] == 2


def test_bulkhead_caps_threads_held_by_a_hanging_plugin(
    make_app: Any, kit: Any, release: threading.Event
) -> None:
    """A sync plugin stuck in its thread keeps its bulkhead place; the next call is rejected, not started."""
    started = [0]

    def stuck(ctx: Any) -> Any:
        started[0] += 1
        release.wait()

    app = make_app(kit.plugin("stuck", home_slot_offers=stuck), deadlines=FAST, bulkhead_size=1)
    assert _degraded(app.get("/v1/home").json()) == {"stuck": "timeout"}
    assert _degraded(app.get("/v1/home").json()) == {"stuck": "rejected"}
    assert started[0] == 1


def test_plugin_timeouts_and_context_stay_in_the_plugins_own_task(make_app: Any, kit: Any) -> None:
    """A coroutine's first step runs eagerly, but as the task that goes on with it: an ``asyncio.timeout``
    or an anyio cancel scope entered before the first await cancels the plugin, never the request, and a
    context variable set before the first await can be reset after it (as tracing spans do)."""
    import contextvars

    import anyio

    var: contextvars.ContextVar[str] = contextvars.ContextVar("plugin_var", default="")

    async def own_timeout(ctx: Any) -> Any:
        try:
            async with asyncio.timeout(0.02):
                await asyncio.sleep(3600)
        except TimeoutError:
            return [kit.offer("home.banner", "own-timeout")]

    async def cancel_scope(ctx: Any) -> Any:
        with anyio.move_on_after(0.02):
            await asyncio.sleep(3600)
        return [kit.offer("home.kingkong", "scope")]

    async def span(ctx: Any) -> Any:
        token = var.set("span")
        await asyncio.sleep(0)
        var.reset(token)
        return [kit.offer("home.notice", "span")]

    app = make_app(
        kit.plugin("own-timeout", home_slot_offers=own_timeout),
        kit.plugin("scope", home_slot_offers=cancel_scope),
        kit.plugin("span", home_slot_offers=span),
        deadlines=Deadlines(home_slot_offers=5_000),
    )
    for _ in range(2):
        response = app.get("/v1/home")
        assert response.status_code == 200
        body = response.json()
        assert body["degraded"] == []
        assert _keys(body, "home.banner/v1") == [("own-timeout", "own-timeout")]
        assert _keys(body, "home.kingkong/v1") == [("scope", "scope")]
        assert _keys(body, "home.notice/v1") == [("span", "span")]


def test_plugin_raising_cancelled_error_is_only_its_own_loss(
    make_app: Any, kit: Any, release: threading.Event
) -> None:
    """``asyncio.CancelledError`` raised by a plugin's own code (inline, in a thread or in a coroutine) is
    that plugin's error, like any other exception: the request is not cancelled with it."""

    def cancels(ctx: Any) -> Any:
        raise asyncio.CancelledError

    async def cancels_async(ctx: Any) -> Any:
        raise asyncio.CancelledError

    app = make_app(
        kit.plugin("good", home_slot_offers=nonblocking(lambda ctx: [kit.offer("home.banner", "b1")])),
        kit.plugin("inline", home_slot_offers=nonblocking(cancels)),
        kit.plugin("threaded", home_slot_offers=cancels),
        kit.plugin("coroutine", home_slot_offers=cancels_async),
    )
    response = app.get("/v1/home")
    assert response.status_code == 200
    body = response.json()
    assert _keys(body, "home.banner/v1") == [("good", "b1")]
    assert _degraded(body) == {"inline": "error", "threaded": "error", "coroutine": "error"}


def test_text_that_cannot_be_sent_leaves_out_only_its_plugin_everywhere(make_app: Any, kit: Any) -> None:
    """A lone surrogate passes every field's constraints but has no UTF-8 form: on home, search, feeds
    and pages the plugin returning it is left out (a 500 for the whole response before)."""
    bad = LocalizedText(zh_CN="坏\ud800")
    good = kit.plugin(
        "good",
        home_slot_offers=lambda ctx: [kit.offer("home.banner", "b")],
        search=lambda ctx, query: [kit.hit("g")],
        feed_items=lambda ctx, column: [kit.item(column, "g")],
    )
    broken = kit.plugin(
        "broken",
        home_slot_offers=lambda ctx: [replace(kit.offer("home.banner", "x"), title=bad)],
        search=lambda ctx, query: [replace(kit.hit("x"), title=bad)],
        feed_items=lambda ctx, column: [replace(kit.item(column, "x"), title=bad)],
        page=lambda ctx, path: Page(title=bad),
    )
    app = make_app(good, broken)
    home = app.get("/v1/home")
    assert home.status_code == 200
    assert _keys(home.json(), "home.banner/v1") == [("good", "b")]
    assert _degraded(home.json()) == {"broken": "invalid"}
    search = app.get("/v1/search", params={"q": "基金"})
    assert search.status_code == 200
    assert [(h["plugin"], h["key"]) for h in search.json()["items"]] == [("good", "g")]
    assert [d["plugin"] for d in search.json()["degraded"]] == ["broken"]
    feed = app.get("/v1/feeds/wealth")
    assert feed.status_code == 200
    assert [(i["plugin"], i["key"]) for i in feed.json()["items"]] == [("good", "g")]
    page = app.get("/v1/pages/broken/report")
    assert page.status_code == 503
    assert page.json()["plugin"] == "broken"


@pytest.mark.parametrize(
    "field", ["key", "action", "slot"],
)
def test_a_trailing_newline_is_no_part_of_a_key_a_link_or_a_slot(make_app: Any, kit: Any, field: str) -> None:
    """The result types' patterns end in ``$``, which Python's ``re`` (msgspec's) also matches before a
    last newline: an offer keyed ``b1\\n`` or linking to ``https://…\\n`` passed the check and reached the
    app, its impression rows and logs. They are invalid, and the rest of the page is unaffected."""
    good = kit.offer("home.banner", "b1")
    odd = {
        "key": replace(good, key="b2\n"),
        "action": replace(good, key="b2", action=replace(good.action, uri="https://example.com/b2\n")),
        "slot": replace(good, key="b2", slot="home.banner/v1\n"),
    }[field]
    app = make_app(
        kit.plugin("good", home_slot_offers=nonblocking(lambda ctx: [good])),
        kit.plugin("odd", home_slot_offers=nonblocking(lambda ctx: [odd])),
    )
    body = app.get("/v1/home").json()
    assert _degraded(body) == {"odd": "invalid"}
    assert _keys(body, "home.banner/v1") == [("good", "b1")]
