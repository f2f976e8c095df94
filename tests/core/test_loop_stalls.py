"""Stalls of the event loop (``dispatch/stalls.py``): caught while they last, blamed on whose code held the
loop, logged and counted; a plugin that held it outside its calls has its breakers opened."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fulcrum_core.app import STALLS
from fulcrum_core.dispatch.breaker import BreakerState
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.dispatch.stalls import HOST, UNKNOWN, Owners, StallWatch
from fulcrum_core.observability.metrics import Metrics
from fulcrum_core.plugins import LoadedPlugin, get_plugin_manager
from fulcrum_core.settings import Settings
from fulcrum_sdk import nonblocking

pytestmark = [pytest.mark.anyio, pytest.mark.both_loops]

HOOK = "home_slot_offers"
HOLD_S = 0.4  # past twice the home page's 150 ms deadline: the rule that opens a breaker


def _loaded(settings: Settings, *plugins: object) -> list[LoadedPlugin]:
    loaded = get_plugin_manager(settings, extra_plugins=plugins, load_entry_points=False)
    assert loaded.quarantined == {}
    return list(loaded.loaded.values())


def _watch(
    plugins: list[LoadedPlugin], dispatcher: Dispatcher, metrics: Metrics, threshold_s: float = 0.1
) -> StallWatch:
    by_id = {plugin.id: plugin for plugin in plugins}
    return StallWatch(threshold_s, lambda: by_id, dispatcher.resilience, metrics)


async def _reported(watch: StallWatch, count: int = 1) -> None:
    """Let the loop run until ``watch`` has reported ``count`` stalls (a few seconds at most)."""
    for _ in range(400):
        if len(watch.stalls) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(watch.stalls)} stall(s) reported, expected {count}")


async def test_a_callback_a_plugin_left_holding_the_loop_is_its_stall_and_opens_its_breaker(
    settings: Settings, kit: Any, log_records: Any
) -> None:
    """A hook returns at once but leaves a ``call_soon`` callback that blocks the loop 400 ms: its call
    was ``ok`` and nothing timed the callback. The watch names the plugin and the callback, counts the
    stall, and opens the plugin's home breaker (400 ms is past twice its deadline); the other plugin's
    breaker stays closed."""
    records = log_records("fulcrum.dispatch")

    async def leaves_a_hold(ctx: Any) -> Any:
        def hold() -> None:
            time.sleep(HOLD_S)

        asyncio.get_running_loop().call_soon(hold)
        return [kit.offer("home.banner", "h")]

    async def fine(ctx: Any) -> Any:
        return [kit.offer("home.banner", "f")]

    metrics = Metrics()
    dispatcher = Dispatcher(settings, observer=metrics)
    plugins = _loaded(
        settings,
        kit.plugin("holder", home_slot_offers=leaves_a_hold),
        kit.plugin("bystander", home_slot_offers=fine),
    )
    watch = _watch(plugins, dispatcher, metrics)
    await watch.start()
    try:
        gathered = await dispatcher.call_many(HOOK, [(p, kit.context(p)) for p in plugins])
        assert set(gathered.results) == {"holder", "bystander"}
        assert not gathered.degraded
        await _reported(watch)
    finally:
        await watch.stop()
    (stall,) = watch.stalls
    assert stall.culprit == "holder"
    assert not stall.own_call
    assert stall.held_s >= HOLD_S - watch.interval_s
    assert stall.frames[0].split(":")[0].endswith("leaves_a_hold.<locals>.hold")
    assert stall.opened == (HOOK,)
    assert dispatcher.resilience.get("holder", HOOK).breaker.state is BreakerState.OPEN
    assert dispatcher.resilience.get("bystander", HOOK).breaker.state is BreakerState.CLOSED
    assert metrics.stalls["holder"][0] == 1
    assert b'fulcrum_event_loop_stalls_total{culprit="holder"} 1.0' in metrics.render()
    (line,) = [r for r in records if "event loop was held" in r.getMessage()]
    assert line.levelname == "WARNING"
    assert "by plugin 'holder' outside its calls; its breakers of home_slot_offers open" in line.getMessage()
    assert "leaves_a_hold.<locals>.hold" in line.getMessage()


async def test_a_finalizer_of_a_plugins_object_run_later_is_its_stall(settings: Settings, kit: Any) -> None:
    """The plugin keeps an object whose ``__del__`` blocks the loop; it is let go of later, in host code
    that has nothing to do with the plugin. The innermost frame that is a plugin's decides: the stall is
    the plugin's, not the host's that happened to drop the object."""
    kept: list[Any] = []

    async def keeps(ctx: Any) -> Any:
        class Sticky:
            def __del__(self) -> None:
                time.sleep(HOLD_S)

        kept.append(Sticky())
        return []

    metrics = Metrics()
    dispatcher = Dispatcher(settings, observer=metrics)
    plugins = _loaded(settings, kit.plugin("sticky", home_slot_offers=keeps))
    watch = _watch(plugins, dispatcher, metrics)
    await watch.start()
    try:
        await dispatcher.call_many(HOOK, [(p, kit.context(p)) for p in plugins])
        asyncio.get_running_loop().call_soon(kept.clear)  # the host lets go: a C call, no frame of its own
        await _reported(watch)
    finally:
        await watch.stop()
    (stall,) = watch.stalls
    assert (stall.culprit, stall.own_call, stall.opened) == ("sticky", False, (HOOK,))
    assert stall.frames[0].split(":")[0].endswith("Sticky.__del__")


async def test_a_plugin_holding_the_loop_in_its_own_inline_call_is_left_to_the_dispatcher(
    settings: Settings, kit: Any, log_records: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A ``@nonblocking`` hook that sleeps 400 ms inline: the dispatcher times and charges that call, so the
    watch names the plugin, counts the stall and says so at INFO, and charges nothing itself."""
    caplog.set_level(logging.INFO, logger="fulcrum.dispatch")
    records = log_records("fulcrum.dispatch")

    def sleeps(ctx: Any) -> Any:
        time.sleep(HOLD_S)
        return []

    metrics = Metrics()
    dispatcher = Dispatcher(settings, observer=metrics)
    plugins = _loaded(settings, kit.plugin("inline", home_slot_offers=nonblocking(sleeps)))
    watch = _watch(plugins, dispatcher, metrics)
    await watch.start()
    try:
        gathered = await dispatcher.call_many(HOOK, [(p, kit.context(p)) for p in plugins])
        await _reported(watch)
    finally:
        await watch.stop()
    assert [d.plugin for d in gathered.degraded] == ["inline"]  # the dispatcher's own charge: a timeout
    (stall,) = watch.stalls
    assert (stall.culprit, stall.own_call, stall.opened) == ("inline", True, ())
    assert metrics.stalls["inline"][0] == 1
    (line,) = [r for r in records if "event loop was held" in r.getMessage()]
    assert line.levelname == "INFO"
    assert "in its own call, charged there" in line.getMessage()


async def test_the_hosts_own_stall_is_the_hosts_and_charges_no_plugin(
    settings: Settings, kit: Any, log_records: Any
) -> None:
    """Code that is no plugin's holds the loop: culprit ``host``, a warning, and every breaker closed."""
    records = log_records("fulcrum.dispatch")

    async def fine(ctx: Any) -> Any:
        return []

    metrics = Metrics()
    dispatcher = Dispatcher(settings, observer=metrics)
    plugins = _loaded(settings, kit.plugin("fine", home_slot_offers=fine))
    watch = _watch(plugins, dispatcher, metrics)
    await watch.start()
    try:
        await dispatcher.call_many(HOOK, [(p, kit.context(p)) for p in plugins])
        asyncio.get_running_loop().call_soon(time.sleep, HOLD_S)
        await _reported(watch)
    finally:
        await watch.stop()
    (stall,) = watch.stalls
    assert stall.culprit == HOST
    assert stall.opened == ()
    assert dispatcher.resilience.get("fine", HOOK).breaker.state is BreakerState.CLOSED
    assert metrics.stalls[HOST][0] == 1
    assert any("by the host's code" in r.getMessage() and r.levelname == "WARNING" for r in records)


async def test_a_short_hold_is_no_stall(settings: Settings, kit: Any) -> None:
    """A plugin's callback holding the loop 20 ms, under a 200 ms threshold: nothing reported of it."""

    async def brief(ctx: Any) -> Any:
        asyncio.get_running_loop().call_soon(time.sleep, 0.02)
        return []

    metrics = Metrics()
    dispatcher = Dispatcher(settings, observer=metrics)
    plugins = _loaded(settings, kit.plugin("brief", home_slot_offers=brief))
    watch = _watch(plugins, dispatcher, metrics, threshold_s=0.2)
    await watch.start()
    try:
        await dispatcher.call_many(HOOK, [(p, kit.context(p)) for p in plugins])
        await asyncio.sleep(0.5)
    finally:
        await watch.stop()
    assert "brief" not in {stall.culprit for stall in watch.stalls}
    assert dispatcher.resilience.get("brief", HOOK).breaker.state is BreakerState.CLOSED


def test_owners_go_by_code_then_module_then_package(settings: Settings, kit: Any) -> None:
    """A hook's own code and what it defines are its plugin's; a module two plugins share decides
    nothing; an installed plugin's whole package is its own; the host's packages are never a plugin's."""
    import fulcrum_pension
    from fulcrum_core.dispatch import dispatcher as host_module

    frames: dict[str, Any] = {}

    def one(ctx: Any) -> Any:
        def inner() -> None:
            frames["inner"] = sys._getframe()

        inner()
        return []

    def two(ctx: Any) -> Any:
        return []

    plugins = _loaded(
        settings,
        kit.plugin("one", home_slot_offers=one),
        kit.plugin("two", home_slot_offers=two),
        fulcrum_pension,
    )
    owners = Owners(plugins)
    one(None)
    assert owners.blame(frames["inner"]).plugin == "one"
    shared = owners.blame(sys._getframe())  # this test's own frame: the module both plugins' hooks are in
    assert shared.plugin is None
    assert shared.where == __name__
    assert Owners([]).blame(sys._getframe()).plugin is None
    blamed_host = owners.blame(_frame_in(host_module.__name__))
    assert (blamed_host.plugin, blamed_host.where) == (None, "")
    assert owners.blame(_frame_in("fulcrum_pension.home")).plugin == "pension"


def _frame_in(module: str) -> Any:
    """A frame whose code runs in ``module`` (its globals name it), called from here."""
    namespace: dict[str, Any] = {"__name__": module, "sys": sys}
    exec("def here():\n    return sys._getframe()\n", namespace)  # noqa: S102 - a frame in another module's name
    here: Callable[[], Any] = namespace["here"]
    return here()


@pytest.mark.parametrize("stall_ms", [100, 0])
def test_the_app_runs_the_watch_while_it_serves_unless_turned_off(
    make_app: Any, kit: Any, stall_ms: int
) -> None:
    """The watch starts with the app (``loop_stall_ms``, default 100) and its thread ends with it; 0 turns
    it off."""
    app = make_app(kit.plugin("quiet", home_slot_offers=lambda ctx: []), loop_stall_ms=stall_ms)
    watch: StallWatch = app.runtime.extras[STALLS]
    assert app.get("/v1/home").status_code == 200
    assert watch.running is (stall_ms > 0)
    assert any(t.name == "fulcrum-stall-watch" for t in threading.enumerate()) is (stall_ms > 0)
    app.client.__exit__(None, None, None)
    assert not watch.running


def test_over_http_a_plugin_that_holds_the_loop_outside_its_calls_is_counted_and_left_out(
    make_app: Any, kit: Any
) -> None:
    """The page that set the hold off is served whole; ``/metrics`` counts the stall under the plugin, and
    the next page leaves the plugin out (its breaker open) while the other plugin's offer stays."""

    async def leaves_a_hold(ctx: Any) -> Any:
        def hold() -> None:
            time.sleep(HOLD_S)

        asyncio.get_running_loop().call_soon(hold)
        return [kit.offer("home.banner", "h")]

    app = make_app(
        kit.plugin("holder", home_slot_offers=leaves_a_hold),
        kit.plugin("other", home_slot_offers=nonblocking(lambda ctx: [kit.offer("home.banner", "o")])),
    )
    first = app.get("/v1/home").json()
    assert first["degraded"] == []
    watch: StallWatch = app.runtime.extras[STALLS]
    deadline = time.monotonic() + 5
    while not watch.stalls and time.monotonic() < deadline:
        time.sleep(0.02)
    staff = app.runtime.tokens.issue("ops", ["platform:read"], kind="staff")
    scraped = app.get("/metrics", token=staff).text
    assert 'fulcrum_event_loop_stalls_total{culprit="holder"} 1.0' in scraped
    assert 'fulcrum_event_loop_stalled_seconds_total{culprit="holder"}' in scraped
    second = app.get("/v1/home").json()
    assert {d["plugin"]: d["reason"] for d in second["degraded"]} == {"holder": "rejected"}
    assert app.runtime.dispatcher.resilience.get("holder", HOOK).breaker.state is BreakerState.OPEN
    assert [i["key"] for i in second["slots"]["home.banner/v1"]] == ["o"]


def test_a_stall_no_sample_caught_is_unknown(settings: Settings) -> None:
    """No sample of the stall (C code held the GIL throughout): culprit ``unknown``, nobody charged."""
    watch = StallWatch(0.1, dict)
    stall = watch._judge(0.3, [])
    assert (stall.culprit, stall.opened, stall.frames) == (UNKNOWN, (), ())


def test_time_the_garbage_collector_took_is_nobodys(settings: Settings, kit: Any) -> None:
    """A stall most of which was a collection is the host's whatever the samples found running (the code
    that allocated); with less collection, the plugin is charged only for the rest."""
    from fulcrum_core.dispatch.stalls import GARBAGE_COLLECTION, Blame, _Sample

    metrics = Metrics()
    dispatcher = Dispatcher(settings, observer=metrics)
    guard = dispatcher.resilience.get("alloc", HOOK)
    watch = StallWatch(0.1, dict, dispatcher.resilience, metrics)
    sample = _Sample(1, Blame("alloc", ("plugin.code:1",)), None)
    mostly_gc = watch._judge(0.4, [sample], gc_s=0.25)
    assert (mostly_gc.culprit, mostly_gc.shared, mostly_gc.opened) == (HOST, GARBAGE_COLLECTION, ())
    some_gc = watch._judge(0.4, [sample], gc_s=0.15)  # 250 ms its own: under 2x the 150 ms deadline
    assert (some_gc.culprit, some_gc.opened) == ("alloc", ())
    assert guard.breaker.state is BreakerState.CLOSED
    little_gc = watch._judge(0.4, [sample], gc_s=0.05)  # 350 ms its own
    assert (little_gc.culprit, little_gc.opened) == ("alloc", (HOOK,))
    assert guard.breaker.state is BreakerState.OPEN


async def test_the_watch_times_collections(settings: Settings) -> None:
    """Between two beats, the collections' time is taken from ``gc.callbacks``; the watch's callback is
    gone once it stops."""
    watch = StallWatch(0.1, dict)
    await watch.start()
    try:
        assert watch._collecting in gc.callbacks
        watch._gc_s = 0.0
        for _ in range(3):
            gc.collect()
        assert watch._gc_s > 0.0
    finally:
        await watch.stop()
    assert watch._collecting not in gc.callbacks
