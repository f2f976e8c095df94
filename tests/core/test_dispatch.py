"""The dispatcher: every request hook with good, raising, hanging, wrong-shaped and huge plugins."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from fulcrum_core.dispatch.clock import wait_until
from fulcrum_core.dispatch.dispatcher import Dispatcher, PluginCallError, _clock_of
from fulcrum_core.dispatch.results import Outcome
from fulcrum_core.plugins import LoadedPlugin, get_plugin_manager
from fulcrum_core.settings import Deadlines, Settings
from fulcrum_sdk.errors import TransactionRefused
from fulcrum_sdk.hookspecs import nonblocking
from fulcrum_sdk.models import (
    MAX_TARGET_BRANCHES,
    MAX_TARGET_LOCALES,
    MAX_TARGET_SEGMENTS,
    LocalizedText,
    SearchHit,
    Targeting,
    TransactionResult,
)

pytestmark = [pytest.mark.anyio, pytest.mark.both_loops]

DEADLINE_MS = 300
HOOK_ARGS: dict[str, dict[str, Any]] = {
    "home_slot_offers": {},
    "search": {"query": "养老"},
    "feed_items": {"column": "wealth"},
}


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Settings with short deadlines, so tests with hanging plugins stay quick."""
    return msgspec.structs.replace(
        settings,
        deadlines=Deadlines(home_slot_offers=DEADLINE_MS, search=DEADLINE_MS, feed_items=DEADLINE_MS),
    )


@pytest.fixture
def dispatcher(fast: Settings) -> Any:
    """A dispatcher on the fast settings, closed after the test."""
    d = Dispatcher(fast)
    yield d
    d.close()


def _loaded(settings: Settings, *plugins: object) -> list[LoadedPlugin]:
    loaded = get_plugin_manager(settings, extra_plugins=plugins, load_entry_points=False)
    assert loaded.quarantined == {}
    return list(loaded.loaded.values())


def _good_result(kit: Any, hook: str) -> list[Any]:
    if hook == "home_slot_offers":
        return [kit.offer("home.banner", "b1")]
    if hook == "search":
        return [kit.hit("h1")]
    return [kit.item("wealth", "f1")]


def _impl(hook: str, body: Callable[..., Any]) -> Callable[..., Any]:
    """A hookimpl for ``hook`` with the spec's argument names, delegating to ``body(ctx)``."""
    if hook == "home_slot_offers":
        return lambda ctx: body(ctx)
    if hook == "search":
        return lambda ctx, query: body(ctx)
    return lambda ctx, column: body(ctx)


def _async_impl(hook: str, body: Callable[..., Any]) -> Callable[..., Any]:
    if hook == "home_slot_offers":

        async def offers(ctx: Any) -> Any:
            return await body(ctx)

        return offers
    if hook == "search":

        async def search(ctx: Any, query: str) -> Any:
            return await body(ctx)

        return search

    async def items(ctx: Any, column: str) -> Any:
        return await body(ctx)

    return items


async def _run(dispatcher: Dispatcher, kit: Any, hook: str, plugins: list[LoadedPlugin]) -> Any:
    return await dispatcher.call_many(hook, [(p, kit.context(p)) for p in plugins], **HOOK_ARGS[hook])


HOOKS = pytest.mark.parametrize("hook", list(HOOK_ARGS))


@HOOKS
async def test_good_sync_and_async_plugins_contribute(
    hook: str, fast: Settings, dispatcher: Any, kit: Any
) -> None:
    """Sync (in a thread) and async plugins both contribute validated results, nothing degraded."""

    async def async_body(ctx: Any) -> Any:
        await asyncio.sleep(0)
        return _good_result(kit, hook)

    plugins = _loaded(
        fast,
        kit.plugin("sync-one", **{hook: _impl(hook, lambda ctx: _good_result(kit, hook))}),
        kit.plugin("async-one", **{hook: _async_impl(hook, async_body)}),
    )
    gathered = await _run(dispatcher, kit, hook, plugins)
    assert gathered.degraded == []
    assert set(gathered.results) == {"sync-one", "async-one"}
    assert gathered.results["sync-one"] == _good_result(kit, hook)


@HOOKS
async def test_raising_plugins_are_degraded_others_kept(
    hook: str, fast: Settings, dispatcher: Any, kit: Any
) -> None:
    """A plugin raising (sync or async) is listed as degraded with reason 'error'; the good one stays."""

    def boom(ctx: Any) -> Any:
        raise ZeroDivisionError("plugin bug")

    async def aboom(ctx: Any) -> Any:
        raise KeyError("async bug")

    plugins = _loaded(
        fast,
        kit.plugin("good", **{hook: _impl(hook, lambda ctx: _good_result(kit, hook))}),
        kit.plugin("sync-raises", **{hook: _impl(hook, boom)}),
        kit.plugin("async-raises", **{hook: _async_impl(hook, aboom)}),
    )
    gathered = await _run(dispatcher, kit, hook, plugins)
    assert set(gathered.results) == {"good"}
    reasons = {d.plugin: (d.reason, d.detail) for d in gathered.degraded}
    assert reasons["sync-raises"] == ("error", "ZeroDivisionError: plugin bug")
    assert reasons["async-raises"][0] == "error"
    assert all(d.hook == hook for d in gathered.degraded)


@HOOKS
async def test_hanging_plugins_time_out_without_being_waited_for(
    hook: str, fast: Settings, dispatcher: Any, kit: Any, release: threading.Event
) -> None:
    """A sync plugin blocked forever and an async one sleeping forever are dropped at the deadline.

    The sync plugin waits on an event set only after the test: had the dispatcher waited for the
    thread, this test would never finish.
    """

    async def sleeps(ctx: Any) -> Any:
        await asyncio.sleep(3600)

    plugins = _loaded(
        fast,
        kit.plugin("good", **{hook: _impl(hook, lambda ctx: _good_result(kit, hook))}),
        kit.plugin("sync-hangs", **{hook: _impl(hook, lambda ctx: release.wait())}),
        kit.plugin("async-hangs", **{hook: _async_impl(hook, sleeps)}),
    )
    gathered = await _run(dispatcher, kit, hook, plugins)
    assert set(gathered.results) == {"good"}
    assert {(d.plugin, d.reason) for d in gathered.degraded} == {
        ("sync-hangs", "timeout"),
        ("async-hangs", "timeout"),
    }
    assert not release.is_set()


async def test_async_plugin_swallowing_cancellation_is_not_awaited(
    fast: Settings, dispatcher: Any, kit: Any
) -> None:
    """An async plugin that ignores cancellation still costs only the deadline."""
    gate = asyncio.Event()

    async def stubborn(ctx: Any, query: str) -> Any:
        while not gate.is_set():
            try:
                await gate.wait()
            except asyncio.CancelledError:
                continue
        return []

    plugins = _loaded(fast, kit.plugin("stubborn", search=stubborn))
    gathered = await _run(dispatcher, kit, "search", plugins)
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("stubborn", "timeout")]
    gate.set()


WRONG_SHAPES: dict[str, Callable[[Any], Any]] = {
    "a dict": lambda kit: {"items": []},
    "a string": lambda kit: "nothing",
    "another hook's type": lambda kit: [kit.hit("x")],
    "a plain dict item": lambda kit: [{"key": "x"}],
}


@HOOKS
@pytest.mark.parametrize("shape", list(WRONG_SHAPES))
async def test_wrong_shapes_are_invalid(
    hook: str, shape: str, fast: Settings, dispatcher: Any, kit: Any
) -> None:
    """Returning anything but a list of the hook's struct drops the plugin with reason 'invalid'."""
    value = WRONG_SHAPES[shape](kit)
    if hook == "search" and shape == "another hook's type":
        value = [kit.offer("home.banner", "x")]
    plugins = _loaded(fast, kit.plugin("shapeless", **{hook: _impl(hook, lambda ctx: value)}))
    gathered = await _run(dispatcher, kit, hook, plugins)
    assert gathered.results == {}
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("shapeless", "invalid")]


@HOOKS
async def test_huge_payloads_are_invalid(hook: str, fast: Settings, dispatcher: Any, kit: Any) -> None:
    """More than 50 items, or text beyond its limit, is refused as invalid."""
    many = _good_result(kit, hook) * 51
    long_title = [msgspec.structs.replace(_good_result(kit, hook)[0], title=LocalizedText(zh_CN="长" * 5000))]
    plugins = _loaded(
        fast,
        kit.plugin("too-many", **{hook: _impl(hook, lambda ctx: many)}),
        kit.plugin("too-long", **{hook: _impl(hook, lambda ctx: long_title)}),
    )
    gathered = await _run(dispatcher, kit, hook, plugins)
    assert gathered.results == {}
    details = {d.plugin: d for d in gathered.degraded}
    assert details["too-many"].reason == "invalid"
    assert "at most 50" in details["too-many"].detail
    assert details["too-long"].reason == "invalid"


async def test_struct_violating_constraints_is_invalid(fast: Settings, dispatcher: Any, kit: Any) -> None:
    """A struct built with an out-of-range field (constructors do not check) is caught by validation."""
    bad = msgspec.structs.replace(kit.hit("h"), relevance=7.5)
    plugins = _loaded(fast, kit.plugin("cheat", search=lambda ctx, query: [bad]))
    gathered = await _run(dispatcher, kit, "search", plugins)
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("cheat", "invalid")]


async def test_none_means_nothing_and_partial_signatures_work(
    fast: Settings, dispatcher: Any, kit: Any
) -> None:
    """Returning None contributes an empty list; an impl taking only ctx still gets called."""
    plugins = _loaded(
        fast,
        kit.plugin("quiet", search=lambda ctx, query: None),
        kit.plugin("ctx-only", search=lambda ctx: [kit.hit("c")]),
    )
    gathered = await _run(dispatcher, kit, "search", plugins)
    assert gathered.degraded == []
    assert gathered.results == {"quiet": [], "ctx-only": [kit.hit("c")]}


async def test_sync_impl_returning_a_coroutine_is_invalid(fast: Settings, dispatcher: Any, kit: Any) -> None:
    """A plain function returning a coroutine is told to be declared async (and the coroutine closed)."""

    async def later() -> list[Any]:
        return []

    plugins = _loaded(fast, kit.plugin("confused", search=lambda ctx, query: later()))
    gathered = await _run(dispatcher, kit, "search", plugins)
    assert gathered.degraded[0].reason == "invalid"
    assert "async def" in gathered.degraded[0].detail


async def test_scope_denied_inside_a_hook_degrades_only_that_plugin(
    fast: Settings, dispatcher: Any, kit: Any
) -> None:
    """A plugin reading data it was not granted is degraded naming the scope; a granted one is fine."""

    def nosy(ctx: Any, query: str) -> list[SearchHit]:
        ctx.data.holdings()
        return [kit.hit("n")]

    def polite(ctx: Any, query: str) -> list[SearchHit]:
        assert ctx.data.profile() is not None
        return [kit.hit("p")]

    plugins = _loaded(fast, kit.plugin("nosy", search=nosy), kit.plugin("polite", search=polite))
    gathered = await _run(dispatcher, kit, "search", plugins)
    assert set(gathered.results) == {"polite"}
    [degraded] = gathered.degraded
    assert degraded.plugin == "nosy"
    assert degraded.reason == "error"
    assert "ScopeDenied" in degraded.detail
    assert "holdings:read" in degraded.detail


async def test_stats_record_every_outcome(fast: Settings, dispatcher: Any, kit: Any) -> None:
    """Each call is counted per plugin and hook with its outcome and last problem."""

    def boom(ctx: Any, query: str) -> Any:
        raise RuntimeError("down")

    plugins = _loaded(fast, kit.plugin("good", search=lambda ctx, query: []), kit.plugin("bad", search=boom))
    await _run(dispatcher, kit, "search", plugins)
    await _run(dispatcher, kit, "search", plugins)
    stats = {(s.plugin, s.hook): s for s in dispatcher.stats.snapshot()}
    assert stats[("good", "search")].calls == 2
    assert stats[("good", "search")].ok == 2
    assert stats[("bad", "search")].error == 2
    assert stats[("bad", "search")].last_problem == "error: RuntimeError: down"


class _Refuser:
    """A guard refusing one plugin, remembering what it was told."""

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.records: list[tuple[str, Outcome]] = []

    def admit(self, plugin: str, hook: str) -> str | None:
        return "breaker open" if plugin == self.refuse else None

    def record(self, plugin: str, hook: str, outcome: Outcome, seconds: float) -> None:
        self.records.append((plugin, outcome))


async def test_guard_refusal_degrades_without_calling(fast: Settings, kit: Any) -> None:
    """A guard refusing a plugin keeps it from running; it is listed as 'rejected'."""
    called: list[str] = []
    guard = _Refuser("blocked")
    dispatcher = Dispatcher(fast, guards=[guard])
    plugins = _loaded(
        fast,
        kit.plugin("blocked", search=lambda ctx, query: called.append("blocked")),
        kit.plugin("open", search=lambda ctx, query: []),
    )
    gathered = await _run(dispatcher, kit, "search", plugins)
    dispatcher.close()
    assert called == []
    assert [(d.plugin, d.reason, d.detail) for d in gathered.degraded] == [
        ("blocked", "rejected", "breaker open")
    ]
    assert sorted(guard.records) == [("blocked", "rejected"), ("open", "ok")]


# --- call_one ------------------------------------------------------------------------------------------


def _tx_plugin(kit: Any, fast: Settings, impl: Callable[..., Any]) -> LoadedPlugin:
    return _loaded(fast, kit.plugin("payer", execute_transaction=impl))[0]


async def test_call_one_returns_the_validated_result(fast: Settings, dispatcher: Any, kit: Any) -> None:
    """call_one returns what the plugin returned, validated."""
    plugin = _tx_plugin(kit, fast, lambda ctx, request: TransactionResult(status="succeeded", reference="r1"))
    result = await dispatcher.call_one(
        plugin, "execute_transaction", kit.context(plugin), deadline_ms=500, request=None
    )
    assert result == TransactionResult(status="succeeded", reference="r1")


async def test_call_one_checks_a_thread_call_as_it_starts(fast: Settings, dispatcher: Any, kit: Any) -> None:
    """``at_start`` is asked in the worker thread before the plugin's code: a reason, or a check that
    raises (it fails closed), withdraws the call as ``rejected``, the plugin never run nor charged."""
    ran: list[int] = []

    def pay(ctx: Any, request: Any) -> TransactionResult:
        ran.append(1)
        return TransactionResult(status="succeeded", reference="r1")

    def broken() -> str | None:
        raise LookupError("no consents")

    plugin = _tx_plugin(kit, fast, pay)
    seen = []
    for check in (lambda: "suspended meanwhile", broken):
        with pytest.raises(PluginCallError) as info:
            await dispatcher.call_one(
                plugin, "execute_transaction", kit.context(plugin), deadline_ms=500, at_start=check,
                request=None,
            )
        seen.append((info.value.kind, info.value.detail))
    assert seen == [
        ("rejected", "not started: suspended meanwhile"),
        ("rejected", "not started: its start could not be checked (LookupError: no consents)"),
    ]
    assert ran == []
    assert [s.error for s in dispatcher.stats.snapshot() if s.plugin == "payer"] == [0]
    result = await dispatcher.call_one(
        plugin, "execute_transaction", kit.context(plugin), deadline_ms=500, at_start=lambda: None,
        request=None,
    )
    assert (result.reference, ran) == ("r1", [1])


async def test_call_one_reraises_transaction_refused(fast: Settings, dispatcher: Any, kit: Any) -> None:
    """A business refusal passes through unchanged, for the transaction service to report."""

    async def refuse(ctx: Any, request: Any) -> Any:
        raise TransactionRefused("pension.cap", LocalizedText(zh_CN="超出年度上限"), field="amount_fen")

    plugin = _tx_plugin(kit, fast, refuse)
    with pytest.raises(TransactionRefused) as info:
        await dispatcher.call_one(
            plugin, "execute_transaction", kit.context(plugin), deadline_ms=500, request=None
        )
    assert info.value.code == "pension.cap"


@pytest.mark.parametrize(
    ("kind", "impl"),
    [
        ("error", lambda ctx, request: 1 / 0),
        ("invalid", lambda ctx, request: {"status": "succeeded"}),
    ],
)
async def test_call_one_raises_plugin_call_error(
    kind: str, impl: Callable[..., Any], fast: Settings, dispatcher: Any, kit: Any
) -> None:
    """Errors and wrong shapes become PluginCallError naming plugin, hook and kind."""
    plugin = _tx_plugin(kit, fast, impl)
    with pytest.raises(PluginCallError) as info:
        await dispatcher.call_one(
            plugin, "execute_transaction", kit.context(plugin), deadline_ms=500, request=None
        )
    assert (info.value.plugin, info.value.hook, info.value.kind) == ("payer", "execute_transaction", kind)


async def test_call_one_times_out_without_waiting(
    fast: Settings, dispatcher: Any, kit: Any, release: threading.Event
) -> None:
    """A transaction plugin that never returns is a 'timeout' after deadline_ms, the thread abandoned."""
    plugin = _tx_plugin(kit, fast, lambda ctx, request: release.wait())
    with pytest.raises(PluginCallError) as info:
        await dispatcher.call_one(
            plugin, "execute_transaction", kit.context(plugin), deadline_ms=50, request=None
        )
    assert info.value.kind == "timeout"


async def test_call_one_on_a_plugin_without_the_hook(fast: Settings, dispatcher: Any, kit: Any) -> None:
    """Calling a hook the plugin does not implement is an error, not a crash."""
    plugin = _loaded(fast, kit.plugin("searcher", search=lambda ctx, query: []))[0]
    with pytest.raises(PluginCallError, match="does not implement"):
        await dispatcher.call_one(
            plugin, "execute_transaction", kit.context(plugin), deadline_ms=50, request=None
        )


async def test_empty_call_list_returns_nothing(dispatcher: Any) -> None:
    """No plugins: an empty result, no waiting."""
    gathered = await dispatcher.call_many("search", [], query="x")
    assert gathered.results == {}
    assert gathered.degraded == []


async def test_transaction_refused_outside_transactions_is_an_error(
    fast: Settings, dispatcher: Any, kit: Any
) -> None:
    """A refusal raised from a list hook is just an error there, counted as one."""

    def refuse(ctx: Any, query: str) -> Any:
        raise TransactionRefused("x.y", LocalizedText(zh_CN="不行"))

    plugins = _loaded(fast, kit.plugin("odd", search=refuse))
    gathered = await _run(dispatcher, kit, "search", plugins)
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("odd", "error")]
    assert dispatcher.stats.snapshot()[0].error == 1


async def test_keyboard_interrupt_raised_by_a_plugin_is_its_error_and_frees_its_place(
    fast: Settings, kit: Any
) -> None:
    """KeyboardInterrupt from a plugin's first step or inline function is the plugin's error (the server
    handles SIGINT itself: none raised there is real), on the general path too (a guard is set): it is
    left out, charged, and the call's bulkhead place is given back."""

    async def first_step(ctx: Any) -> Any:
        raise KeyboardInterrupt

    @nonblocking
    def inline(ctx: Any) -> Any:
        raise KeyboardInterrupt

    dispatcher = Dispatcher(fast, guards=[_Refuser("nobody")])
    for impl in (first_step, inline):
        plugins = _loaded(fast, kit.plugin("stopper", home_slot_offers=impl))
        gathered = await _run(dispatcher, kit, "home_slot_offers", plugins)
        assert [(d.plugin, d.reason) for d in gathered.degraded] == [("stopper", "error")]
        bulkhead = dispatcher.resilience.get("stopper", "home_slot_offers").bulkhead
        assert bulkhead.available == bulkhead.max_concurrent
    assert [s.error for s in dispatcher.stats.snapshot() if s.plugin == "stopper"] == [2]
    dispatcher.close()


@pytest.mark.parametrize("path", ["inline", "thread"])
@pytest.mark.parametrize(
    ("field", "size"),
    [("segments", MAX_TARGET_SEGMENTS + 1), ("branches", MAX_TARGET_BRANCHES + 1), ("locales", 1_000_000)],
)
async def test_oversized_targeting_sets_are_invalid(
    field: str, size: int, path: str, fast: Settings, kit: Any
) -> None:
    """An offer targeting more segments, branches or locales than a bank has is refused as invalid
    (its validation and memo entry would otherwise grow with whatever the plugin returns); a set at
    the bound is still accepted. Alike from a plugin run inline and one run in a worker thread (given a
    deadline no busy machine's thread start outlasts: the check is about the results)."""
    at_bound = {
        "segments": MAX_TARGET_SEGMENTS,
        "branches": MAX_TARGET_BRANCHES,
        "locales": MAX_TARGET_LOCALES,
    }
    def names(n: int) -> frozenset[str]:  # each of the field's shape (a locale is a language tag)
        return frozenset(f"zh-{i}" if field == "locales" else str(i) for i in range(n))

    over = kit.offer("home.banner", "over", targeting=Targeting(**{field: names(size)}))
    fits = kit.offer("home.banner", "fits", targeting=Targeting(**{field: names(at_bound[field])}))
    roomy = msgspec.structs.replace(fast, deadlines=Deadlines(home_slot_offers=30_000))
    run: Callable[[Callable[..., Any]], Any] = nonblocking if path == "inline" else (lambda fn: fn)
    plugins = _loaded(
        roomy,
        kit.plugin("sprawling", home_slot_offers=run(lambda ctx: [over])),
        kit.plugin("bounded", home_slot_offers=run(lambda ctx: [fits])),
    )
    dispatcher = Dispatcher(roomy)
    try:
        gathered = await _run(dispatcher, kit, "home_slot_offers", plugins)
    finally:
        dispatcher.close()
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("sprawling", "invalid")]
    assert f"targeting.{field}" in gathered.degraded[0].detail
    assert list(gathered.results) == ["bounded"]


async def test_overlong_targeting_names_are_invalid(fast: Settings, dispatcher: Any, kit: Any) -> None:
    """A segment name far longer than any real one is refused as invalid too."""
    offer = kit.offer("home.banner", "long", targeting=Targeting(segments=frozenset({"s" * 10_000})))
    plugins = _loaded(fast, kit.plugin("wordy", home_slot_offers=lambda ctx: [offer]))
    gathered = await _run(dispatcher, kit, "home_slot_offers", plugins)
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("wordy", "invalid")]


async def test_a_banner_title_that_reads_reversed_is_invalid_naming_field_and_character(
    fast: Settings, dispatcher: Any, kit: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A RIGHT-TO-LEFT OVERRIDE makes "转账 ¥\u202e001" read "转账 ¥100": the plugin is left out as for any
    invalid result, and its log line and degraded detail name the field and the character. The other
    plugin's Chinese title with an emoji sequence (ZWJ) and an LRM still shows."""
    spoof = msgspec.structs.replace(
        kit.offer("home.banner", "b1"), title=LocalizedText(zh_CN="转账 ¥\u202e001")
    )
    fine = msgspec.structs.replace(
        kit.offer("home.banner", "b2"), title=LocalizedText(zh_CN="家庭 👨\u200d👩\u200d👧\u200e理财")
    )
    plugins = _loaded(
        fast,
        kit.plugin("spoofer", home_slot_offers=lambda ctx: [spoof]),
        kit.plugin("honest", home_slot_offers=lambda ctx: [fine]),
    )
    gathered = await _run(dispatcher, kit, "home_slot_offers", plugins)
    assert list(gathered.results) == ["honest"]
    (degraded,) = gathered.degraded
    assert (degraded.plugin, degraded.reason) == ("spoofer", "invalid")
    named = "title.zh-CN: U+202E RIGHT-TO-LEFT OVERRIDE at index 4 is not allowed in display text"
    assert degraded.detail == f"home_slot_offers item 0 is invalid: {named}"
    assert any(named in r.getMessage() and "'spoofer'" in r.getMessage() for r in caplog.records)


async def test_a_plugin_whose_turn_comes_after_the_callers_budget_is_not_started(
    fast: Settings, kit: Any
) -> None:
    """Plugins run inline one after another, each judged by its own deadline: two that hold the loop
    200 ms each (within their 300 ms) spend a caller's 350 ms budget, and the plugin after them is left
    out unasked (``rejected``, its breaker not charged) instead of making the answer later still.
    Without a caller's budget every plugin is asked, as before."""
    asked: list[str] = []

    def holder(name: str) -> Any:
        @nonblocking
        def hold(ctx: Any) -> Any:
            asked.append(name)
            time.sleep(0.2)
            return [kit.offer("home.banner", name)]

        return hold

    @nonblocking
    def quick(ctx: Any) -> Any:
        asked.append("late")
        return [kit.offer("home.banner", "late")]

    plugins = {p.id: p for p in _loaded(
        fast, kit.plugin("hold-1", home_slot_offers=holder("hold-1")),
        kit.plugin("hold-2", home_slot_offers=holder("hold-2")), kit.plugin("late", home_slot_offers=quick),
    )}
    calls = [(plugins[i], kit.context(plugins[i])) for i in ("hold-1", "hold-2", "late")]
    dispatcher = Dispatcher(fast)
    gathered = await dispatcher.call_many("home_slot_offers", calls, deadline_ms=350)
    assert asked == ["hold-1", "hold-2"]
    assert sorted(gathered.results) == ["hold-1", "hold-2"]
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("late", "rejected")]
    assert "budget" in gathered.degraded[0].detail
    assert not dispatcher.breaker_open("late", "home_slot_offers")
    [late] = [s for s in dispatcher.stats.snapshot() if s.plugin == "late"]
    assert (late.ok, late.rejected, late.error, late.timeout) == (0, 1, 0, 0)
    asked.clear()
    gathered = await dispatcher.call_many("home_slot_offers", calls)
    assert asked == ["hold-1", "hold-2", "late"]
    # Each judged by its own deadline only: none is left out unasked (on a machine loaded enough to
    # stretch a call past its 300 ms, that call is a timeout, not a refusal).
    assert [d for d in gathered.degraded if d.reason == "rejected"] == []
    dispatcher.close()


async def test_system_exit_raised_by_a_plugin_on_the_general_path_is_its_error(
    fast: Settings, kit: Any
) -> None:
    """SystemExit (a plugin calling ``sys.exit()``) from a first step or an inline call, with a guard set
    (the general path): that plugin's ``error``, its bulkhead place given back, its breaker charged."""

    async def first_step(ctx: Any) -> Any:
        raise SystemExit(1)

    @nonblocking
    def inline(ctx: Any) -> Any:
        raise SystemExit(1)

    dispatcher = Dispatcher(fast, guards=[_Refuser("nobody")])
    # One plugin each: a first call slow on a loaded machine may open its own breaker, not the other's.
    for name, impl in (("stopper-step", first_step), ("stopper-inline", inline)):
        plugins = _loaded(fast, kit.plugin(name, home_slot_offers=impl))
        gathered = await _run(dispatcher, kit, "home_slot_offers", plugins)
        assert [(d.plugin, d.reason) for d in gathered.degraded] == [(name, "error")]
        bulkhead = dispatcher.resilience.get(name, "home_slot_offers").bulkhead
        assert bulkhead.available == bulkhead.max_concurrent
    assert sorted((s.plugin, s.error) for s in dispatcher.stats.snapshot()) == [
        ("stopper-inline", 1), ("stopper-step", 1)
    ]
    dispatcher.close()


def _busy(seconds: float) -> None:
    """Hold the thread ``seconds``, never yielding (a plugin computing)."""
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        pass


class _Seen:
    """A dispatcher observer keeping every recorded call's (plugin, outcome, seconds)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    def observe(self, plugin: str, hook: str, outcome: str, seconds: float) -> None:
        self.calls.append((plugin, outcome, seconds))

    def observe_ok(self, hook: str, calls: Any) -> None:
        self.calls.extend((plugin, "ok", seconds) for plugin, seconds in calls)


async def test_call_times_are_measured_finer_than_the_loops_clock(fast: Settings, kit: Any) -> None:
    """A call's time (its stats, metrics and slow-call count) is read to the microsecond on either loop,
    however it ran: a first step that never waits, an inline function, a coroutine that waits, a plain
    function in a worker thread. uvloop's ``loop.time()`` is cut to the millisecond, which would record
    these 0.3 ms calls as 0 or 1 ms."""

    async def computes(ctx: Any) -> Any:
        _busy(0.0003)
        return [kit.offer("home.banner", "a")]

    @nonblocking
    def computes_inline(ctx: Any) -> Any:
        _busy(0.0003)
        return [kit.offer("home.banner", "b")]

    async def waits_then_computes(ctx: Any) -> Any:
        await asyncio.sleep(0)
        _busy(0.0003)
        return [kit.offer("home.banner", "c")]

    def threaded(ctx: Any) -> Any:
        _busy(0.0003)
        return [kit.offer("home.banner", "d")]

    seen = _Seen()
    # Deadlines no pause can reach: the subject is the clock's resolution, and on a loaded machine the
    # process once stood still 410 ms inside an inline call, past the 300 ms one.
    roomy = msgspec.structs.replace(fast, deadlines=Deadlines(home_slot_offers=10_000))
    dispatcher = Dispatcher(roomy, observer=seen)
    plugins = _loaded(
        roomy,
        kit.plugin("eager", home_slot_offers=computes),
        kit.plugin("inline", home_slot_offers=computes_inline),
        kit.plugin("waits", home_slot_offers=waits_then_computes),
        kit.plugin("threaded", home_slot_offers=threaded),
    )
    waits = plugins[2]
    for _ in range(10):
        gathered = await _run(dispatcher, kit, "home_slot_offers", plugins)
        assert gathered.degraded == []
        assert await dispatcher.call_one(waits, "home_slot_offers", kit.context(waits), deadline_ms=10_000)
    dispatcher.close()
    assert len(seen.calls) == 50
    assert {plugin for plugin, _, _ in seen.calls} == {"eager", "inline", "waits", "threaded"}
    assert all(outcome == "ok" and seconds >= 0.0003 for _, outcome, seconds in seen.calls), seen.calls


def test_the_dispatchers_clock_is_the_monotonic_one_on_either_loop_and_the_loops_own_elsewhere() -> None:
    """asyncio's and uvloop's loops read ``time.monotonic`` (uvloop to the millisecond): the dispatcher
    reads it directly. A loop with a clock of its own (a test's virtual time) is read through it."""
    uvloop = pytest.importorskip("uvloop")

    class Virtual(asyncio.SelectorEventLoop):
        def time(self) -> float:
            return 42.0

    for loop in (asyncio.new_event_loop(), uvloop.new_event_loop(), Virtual()):
        try:
            expected = 42.0 if isinstance(loop, Virtual) else None
            clock = _clock_of(loop)
            if expected is None:
                assert clock is time.monotonic
                assert abs(loop.time() - time.monotonic()) < 0.01  # one clock
            else:
                assert clock() == expected
        finally:
            loop.close()


@pytest.mark.parametrize("done_early", [False, True])
async def test_wait_until_waits_the_whole_time_unless_everything_is_done(done_early: bool) -> None:
    """uvloop's timers run on a millisecond clock and may fire a little early: the dispatcher's and the
    campaigns' waits (``wait_until``) end no sooner than their deadline unless everything is done."""
    loop = asyncio.get_running_loop()

    async def ticks() -> None:  # other work waking the loop, as a server's other requests do
        while True:  # noqa: ASYNC110 - a ticker, not a wait for a condition
            await asyncio.sleep(0.0001)

    ticker = asyncio.create_task(ticks())
    try:
        for _ in range(30):
            future: asyncio.Future[None] = loop.create_future()
            if done_early:
                loop.call_later(0.001, future.set_result, None)
            ends = time.monotonic() + 0.005
            await wait_until([future], ends, time.monotonic)
            if done_early:
                assert future.done()
                assert time.monotonic() < ends + 0.5
            else:
                assert not future.done()
                assert time.monotonic() >= ends
    finally:
        ticker.cancel()
