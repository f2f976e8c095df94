"""The dispatcher's fast path and guards: eager coroutines, inline nonblocking impls, breaker, bulkhead."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from fulcrum_core.dispatch.breaker import BreakerConfig
from fulcrum_core.dispatch.clock import VirtualClock
from fulcrum_core.dispatch.dispatcher import Dispatcher, PluginCallError
from fulcrum_core.plugins import LoadedPlugin, get_plugin_manager
from fulcrum_core.settings import Deadlines, Settings
from fulcrum_sdk import nonblocking
from fulcrum_sdk.hookspecs import is_nonblocking
from fulcrum_sdk.models import TransactionResult

pytestmark = [pytest.mark.anyio, pytest.mark.both_loops]


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Short deadlines and a breaker that judges after two calls."""
    return msgspec.structs.replace(
        settings,
        deadlines=Deadlines(search=100, execute_transaction=100),
        breaker=BreakerConfig(
            sliding_window_size=2, minimum_number_of_calls=2, permitted_calls_in_half_open=1,
            wait_duration_in_open_state_s=10,
        ),
    )


@pytest.fixture
def blamed(fast: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``fast`` with a 400 ms search deadline, for tests whose breakers must be charged for timeouts: a
    wait that ends a quarter of its deadline late blames no plugin (the loop was held). A loaded
    machine's loop came back over 100 ms late now and then, and a timeout went unblamed, so here no
    lateness excuses one."""
    monkeypatch.setattr("fulcrum_core.dispatch.dispatcher._LATE_LOOP", 1_000.0)
    return msgspec.structs.replace(fast, deadlines=Deadlines(search=400, execute_transaction=100))


def _loaded(settings: Settings, *plugins: object) -> list[LoadedPlugin]:
    loaded = get_plugin_manager(settings, extra_plugins=plugins, load_entry_points=False)
    assert loaded.quarantined == {}
    return list(loaded.loaded.values())


class _Observer:
    """Remembers every (plugin, outcome) it is told."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def observe(self, plugin: str, hook: str, outcome: str, seconds: float) -> None:
        self.seen.append((plugin, outcome))


def _hangs_until_cancelled(cancelled: asyncio.Event) -> Callable[..., Any]:
    """A ``search`` hookimpl that waits forever and sets ``cancelled`` when it is cancelled."""

    async def hangs(ctx: Any, query: str) -> Any:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    return hangs


async def _cancel_while_waiting(
    dispatcher: Dispatcher, kit: Any, plugin: LoadedPlugin, cancelled: asyncio.Event, *, one: bool
) -> None:
    """Call ``plugin`` (``call_one`` or ``call_many``), cancel the caller while it waits, and wait until
    the plugin has seen its own cancellation."""
    if one:
        waiting = dispatcher.call_one(plugin, "search", kit.context(plugin), deadline_ms=60_000, query="q")
    else:
        waiting = _search(dispatcher, kit, [plugin])
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(waiting, 0.05)
    await asyncio.wait_for(cancelled.wait(), 10)


async def _search(dispatcher: Dispatcher, kit: Any, plugins: list[LoadedPlugin]) -> Any:
    return await dispatcher.call_many("search", [(p, kit.context(p)) for p in plugins], query="q")


def test_nonblocking_marks_the_function_and_returns_it() -> None:
    """The marker returns the same function, now recognised as nonblocking."""

    def impl(ctx: Any) -> None:
        return None

    assert nonblocking(impl) is impl
    assert is_nonblocking(impl)
    assert not is_nonblocking(lambda ctx: None)


async def test_coroutine_runs_its_first_step_inline_as_its_own_task(fast: Settings, kit: Any) -> None:
    """An async impl's first step runs inline, before the dispatcher waits for anything, but as the task
    that goes on with it if it suspends: never as the caller's task (whose cancellation a timeout
    entered there would trigger)."""
    caller = asyncio.current_task()
    tasks: dict[str, Any] = {}
    order: list[str] = []

    async def eager(ctx: Any, query: str) -> Any:
        order.append("eager")
        tasks["eager"] = asyncio.current_task()
        return [kit.hit("e")]

    async def waits(ctx: Any, query: str) -> Any:
        tasks["waits before"] = asyncio.current_task()
        await asyncio.sleep(0)
        tasks["waits"] = asyncio.current_task()
        return [kit.hit("w")]

    async def other() -> None:
        order.append("loop ran")

    asyncio.get_running_loop().create_task(other())
    dispatcher = Dispatcher(fast)
    gathered = await _search(dispatcher, kit, _loaded(fast, kit.plugin("eager", search=eager),
                                                       kit.plugin("waits", search=waits)))
    dispatcher.close()
    assert gathered.degraded == []
    assert set(gathered.results) == {"eager", "waits"}
    assert order == ["eager", "loop ran"]  # inline: the loop had not run yet
    assert tasks["eager"] is not caller
    assert tasks["waits before"] is tasks["waits"] is not caller
    assert asyncio.current_task() is caller


async def test_nonblocking_sync_runs_on_the_loop_thread_others_in_workers(fast: Settings, kit: Any) -> None:
    """A declared nonblocking impl runs in the event loop's thread; an undeclared one in a worker thread."""
    threads: dict[str, int] = {}

    @nonblocking
    def inline(ctx: Any, query: str) -> Any:
        threads["inline"] = threading.get_ident()
        return []

    def threaded(ctx: Any, query: str) -> Any:
        threads["threaded"] = threading.get_ident()
        return []

    dispatcher = Dispatcher(fast)
    await _search(dispatcher, kit, _loaded(fast, kit.plugin("inline", search=inline),
                                           kit.plugin("threaded", search=threaded)))
    dispatcher.close()
    assert threads["inline"] == threading.get_ident()
    assert threads["threaded"] != threading.get_ident()


async def test_suspended_coroutine_is_cancelled_at_the_deadline(fast: Settings, kit: Any) -> None:
    """A coroutine that suspends past the deadline is cancelled (CancelledError delivered to it)."""
    cancelled = asyncio.Event()

    sleeper = _hangs_until_cancelled(cancelled)
    dispatcher = Dispatcher(fast)
    gathered = await _search(dispatcher, kit, _loaded(fast, kit.plugin("sleeper", search=sleeper)))
    await asyncio.wait_for(cancelled.wait(), 5)
    dispatcher.close()
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("sleeper", "timeout")]


async def test_errors_before_and_after_the_first_await_are_errors(fast: Settings, kit: Any) -> None:
    """An async impl raising before it waits (inline) or after (in its task) is degraded as 'error'."""

    async def early(ctx: Any, query: str) -> Any:
        raise ValueError("early")

    async def late(ctx: Any, query: str) -> Any:
        await asyncio.sleep(0)
        raise ValueError("late")

    dispatcher = Dispatcher(fast)
    gathered = await _search(dispatcher, kit, _loaded(fast, kit.plugin("early", search=early),
                                                       kit.plugin("late", search=late)))
    dispatcher.close()
    assert {(d.plugin, d.reason, d.detail) for d in gathered.degraded} == {
        ("early", "error", "ValueError: early"),
        ("late", "error", "ValueError: late"),
    }


async def test_breaker_opens_rejects_and_closes_on_a_virtual_clock(fast: Settings, kit: Any) -> None:
    """Two failures open the breaker; calls are then refused; after the wait a good probe closes it."""
    healthy = [False]

    @nonblocking
    def wobbly(ctx: Any, query: str) -> Any:
        if not healthy[0]:
            raise RuntimeError("down")
        return [kit.hit("ok")]

    clock = VirtualClock()
    observer = _Observer()
    dispatcher = Dispatcher(fast, clock=clock, observer=observer)
    plugins = _loaded(fast, kit.plugin("wobbly", search=wobbly))
    for _ in range(2):
        await _search(dispatcher, kit, plugins)
    assert dispatcher.breaker_open("wobbly", "search")
    refused = await _search(dispatcher, kit, plugins)
    assert [(d.reason, d.detail) for d in refused.degraded] == [("rejected", "circuit breaker open")]
    assert observer.seen[-1] == ("wobbly", "breaker_open")

    healthy[0] = True
    clock.advance(10)
    probe = await _search(dispatcher, kit, plugins)
    dispatcher.close()
    assert probe.degraded == []
    assert not dispatcher.breaker_open("wobbly", "search")
    outcomes = [outcome for _, outcome in observer.seen]
    assert outcomes == ["error", "error", "breaker_open", "ok"]


async def test_bulkhead_place_is_held_until_the_thread_ends(
    fast: Settings, kit: Any, release: threading.Event
) -> None:
    """A timed-out thread keeps its bulkhead place until it returns, then the place is free again."""
    conf = msgspec.structs.replace(fast, bulkhead_size=1, breaker=BreakerConfig(minimum_number_of_calls=100))
    done = threading.Event()

    def stuck(ctx: Any, query: str) -> Any:
        release.wait()
        done.set()
        return []

    dispatcher = Dispatcher(conf)
    plugins = _loaded(conf, kit.plugin("stuck", search=stuck))
    first = await _search(dispatcher, kit, plugins)
    second = await _search(dispatcher, kit, plugins)
    assert [d.reason for d in first.degraded] == ["timeout"]
    assert [d.reason for d in second.degraded] == ["rejected"]
    assert "bulkhead full" in second.degraded[0].detail
    release.set()
    await asyncio.to_thread(done.wait, 5)
    guard = dispatcher.resilience.get("stuck", "search")
    for _ in range(100):  # the place is given back through the loop; let it run
        if guard.bulkhead.active == 0:
            break
        await asyncio.sleep(0)
    dispatcher.close()
    assert guard.bulkhead.active == 0


async def test_call_one_uses_the_fast_path_and_the_breaker(fast: Settings, kit: Any) -> None:
    """call_one returns an eager coroutine's result, and refuses once the plugin's breaker is open."""
    results = iter([RuntimeError("a"), RuntimeError("b")])

    async def pay(ctx: Any, request: Any) -> Any:
        raise next(results)

    async def good(ctx: Any, request: Any) -> Any:
        return TransactionResult(status="succeeded", reference="r")

    dispatcher = Dispatcher(fast)
    [payer] = _loaded(fast, kit.plugin("payer", execute_transaction=pay, transaction_types=["t"]))
    [fine] = _loaded(fast, kit.plugin("fine", execute_transaction=good, transaction_types=["t"]))
    ctx = kit.context(fine)
    ok = await dispatcher.call_one(fine, "execute_transaction", ctx, deadline_ms=100, request=None)
    assert ok == TransactionResult(status="succeeded", reference="r")
    for _ in range(2):
        with pytest.raises(PluginCallError):
            await dispatcher.call_one(payer, "execute_transaction", ctx, deadline_ms=100, request=None)
    with pytest.raises(PluginCallError) as info:
        await dispatcher.call_one(payer, "execute_transaction", ctx, deadline_ms=100, request=None)
    dispatcher.close()
    assert info.value.kind == "rejected"


async def test_call_queued_for_a_thread_is_left_out_but_not_blamed(
    settings: Settings, kit: Any, release: threading.Event
) -> None:
    """With every worker thread busy, a queued plugin times out without its breaker counting it."""
    conf = msgspec.structs.replace(
        # 500 ms: a wait that ends a quarter of its deadline late (a held loop) blames no plugin, and a
        # loaded machine's loop came back over 12.5 ms late after a 50 ms one: the stuck plugin went free.
        settings, deadlines=Deadlines(search=500),
        breaker=BreakerConfig(sliding_window_size=1, minimum_number_of_calls=1),
    )
    dispatcher = Dispatcher(conf, max_threads=1)
    plugins = _loaded(
        conf,
        kit.plugin("a-stuck", search=lambda ctx, query: release.wait()),
        kit.plugin("b-queued", search=lambda ctx, query: []),
    )
    gathered = await _search(dispatcher, kit, plugins)
    dispatcher.close()
    details = {d.plugin: (d.reason, d.detail) for d in gathered.degraded}
    assert details["a-stuck"][0] == "timeout"
    assert details["b-queued"][0] == "timeout"
    assert "not started" in details["b-queued"][1]
    assert dispatcher.breaker_open("a-stuck", "search")
    assert not dispatcher.breaker_open("b-queued", "search")


async def test_call_one_still_queued_at_its_deadline_is_rejected_and_never_runs(
    settings: Settings, kit: Any, release: threading.Event
) -> None:
    """call_one of a sync hook still queued for the one worker thread (held by another plugin's call,
    still within its own deadline, so no thread was lent in its place) when its deadline passes:
    withdrawn, so ``rejected`` (the plugin never saw it), not ``timeout``; its breaker is not charged
    and it does not run once the thread is free."""
    conf = msgspec.structs.replace(settings, deadlines=Deadlines(search=30_000))
    dispatcher = Dispatcher(conf, max_threads=1)
    ran: list[str] = []
    holding = threading.Event()

    def pay(ctx: Any, request: Any) -> Any:
        ran.append("pay")
        return TransactionResult(status="succeeded", reference="r")

    def stuck(ctx: Any, query: str) -> Any:
        holding.set()
        release.wait()
        return []

    [holder] = _loaded(conf, kit.plugin("a-stuck", search=stuck))
    [payer] = _loaded(conf, kit.plugin("payer", execute_transaction=pay, transaction_types=["t"]))
    held = asyncio.ensure_future(dispatcher.call_many("search", [(holder, kit.context(holder))], query="q"))
    assert await asyncio.to_thread(holding.wait, 5.0)
    ctx = kit.context(payer)
    with pytest.raises(PluginCallError) as info:
        await dispatcher.call_one(payer, "execute_transaction", ctx, deadline_ms=50, request=None)
    assert info.value.kind == "rejected"
    assert "never ran" in info.value.detail
    release.set()
    assert (await held).degraded == []
    # The one thread takes its queue in order: the withdrawn call, were it still queued, runs before this.
    await dispatcher.in_plugin_thread(lambda: None)
    dispatcher.close()
    assert ran == []
    assert dispatcher.resilience.get("payer", "execute_transaction").breaker.state == "closed"
    [stat] = [s for s in dispatcher.stats.snapshot() if s.plugin == "payer"]
    assert (stat.rejected, stat.timeout) == (1, 0)


async def test_a_queued_call_given_up_never_runs_and_every_place_comes_back(
    settings: Settings, kit: Any, release: threading.Event
) -> None:
    """A thread call the dispatcher gave up on while it was still queued is withdrawn (it never runs);
    a running one keeps its place until it returns; then both places are free again."""
    # 500 ms: with 50 a loaded machine's thread may not have begun the stuck call by the deadline.
    conf = msgspec.structs.replace(settings, deadlines=Deadlines(search=500))
    dispatcher = Dispatcher(conf, max_threads=1)
    ran: list[str] = []

    def queued(ctx: Any, query: str) -> Any:
        ran.append("queued")
        return []

    plugins = _loaded(
        conf,
        kit.plugin("a-stuck", search=lambda ctx, query: release.wait()),
        kit.plugin("b-queued", search=queued),
    )
    gathered = await _search(dispatcher, kit, plugins)
    assert {d.plugin for d in gathered.degraded} == {"a-stuck", "b-queued"}
    stuck = dispatcher.resilience.get("a-stuck", "search").bulkhead
    withdrawn = dispatcher.resilience.get("b-queued", "search").bulkhead
    for _ in range(100):
        if withdrawn.active == 0:
            break
        await asyncio.sleep(0.01)
    assert (stuck.active, withdrawn.active) == (1, 0)
    release.set()
    for _ in range(200):
        if stuck.active == 0:
            break
        await asyncio.sleep(0.01)
    # The one thread takes its queue in order: the withdrawn call, were it still queued, runs before this.
    await dispatcher.in_plugin_thread(lambda: None)
    dispatcher.close()
    assert stuck.active == 0
    assert ran == []


async def test_callers_budget_cuts_the_wait_without_blaming_plugins(
    fast: Settings, kit: Any, release: threading.Event
) -> None:
    """A budget shorter than the deadline ends the wait early; inline results are kept, breakers uncharged."""

    async def slow(ctx: Any, query: str) -> Any:
        await asyncio.sleep(3600)

    @nonblocking
    def quick(ctx: Any, query: str) -> Any:
        return [kit.hit("q")]

    one_call = BreakerConfig(sliding_window_size=1, minimum_number_of_calls=1)
    conf = msgspec.structs.replace(fast, breaker=one_call)
    dispatcher = Dispatcher(conf)
    plugins = _loaded(conf, kit.plugin("quick", search=quick), kit.plugin("slow", search=slow))
    gathered = await dispatcher.call_many(
        "search", [(p, kit.context(p)) for p in plugins], deadline_ms=0, query="q"
    )
    dispatcher.close()
    assert gathered.results == {"quick": [kit.hit("q")]}
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("slow", "timeout")]
    assert not dispatcher.breaker_open("slow", "search")


async def test_inline_calls_take_no_bulkhead_place_and_a_waiting_one_holds_its_place(
    fast: Settings, kit: Any
) -> None:
    """Under a closed breaker an inline call never overlaps another, so it needs no place; a coroutine
    that suspends takes one for as long as its task runs, and a full bulkhead refuses even inline calls."""
    conf = msgspec.structs.replace(fast, bulkhead_size=1, deadlines=Deadlines(search=5000))
    gate = asyncio.Event()
    waiting = [True]

    async def sometimes_waits(ctx: Any, query: str) -> Any:
        if waiting[0]:
            await gate.wait()
        return [kit.hit("s")]

    @nonblocking
    def quick(ctx: Any, query: str) -> Any:
        return [kit.hit("q")]

    dispatcher = Dispatcher(conf)
    loaded = _loaded(conf, kit.plugin("waiter", search=sometimes_waits), kit.plugin("quick", search=quick))
    by_id = {p.id: p for p in loaded}
    waiter, fast_one = [by_id["waiter"]], [by_id["quick"]]
    waiter_guard = dispatcher.resilience.get("waiter", "search")
    quick_guard = dispatcher.resilience.get("quick", "search")
    for _ in range(3):
        calm = await _search(dispatcher, kit, fast_one)
        assert calm.degraded == []
        assert quick_guard.bulkhead.active == 0
    # A call that waits holds the one place while its task runs.
    first = asyncio.create_task(_search(dispatcher, kit, waiter))
    for _ in range(10):
        await asyncio.sleep(0)
    assert waiter_guard.bulkhead.active == 1
    waiting[0] = False  # this call would now finish inline, but the bulkhead is full
    refused = await _search(dispatcher, kit, waiter)
    assert [(d.plugin, d.reason) for d in refused.degraded] == [("waiter", "rejected")]
    assert "bulkhead full" in refused.degraded[0].detail
    gate.set()
    done = await first
    assert done.degraded == []
    assert waiter_guard.bulkhead.active == 0
    inline = await _search(dispatcher, kit, waiter)
    dispatcher.close()
    assert inline.degraded == []
    assert waiter_guard.bulkhead.active == 0


async def test_a_thread_plugin_raising_stopiteration_is_an_error_at_once(
    settings: Settings, kit: Any
) -> None:
    """StopIteration cannot travel through a future; the call still ends as this plugin's error,
    without waiting out the deadline."""

    def stops(ctx: Any, query: str) -> Any:
        raise StopIteration("odd")

    conf = msgspec.structs.replace(settings, deadlines=Deadlines(search=5000))
    dispatcher = Dispatcher(conf)
    plugins = _loaded(conf, kit.plugin("stops", search=stops))
    started = asyncio.get_running_loop().time()
    gathered = await _search(dispatcher, kit, plugins)
    took = asyncio.get_running_loop().time() - started
    dispatcher.close()
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("stops", "error")]
    assert "StopIteration" in gathered.degraded[0].detail
    assert took < 2.5


async def test_plugin_thread_work_is_refused_when_the_bulkhead_is_full(
    settings: Settings, release: threading.Event
) -> None:
    """Host code run for a plugin holds that plugin's bulkhead place until its thread ends; the next
    one is refused at once and counted, and naming a plugin without a hook is a programming error."""
    observer = _Observer()
    dispatcher = Dispatcher(msgspec.structs.replace(settings, bulkhead_size=1), observer=observer)
    held = asyncio.ensure_future(dispatcher.in_plugin_thread(release.wait, 5, plugin="p", hook="search"))
    for _ in range(100):
        if dispatcher.resilience.get("p", "search").bulkhead.active:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(PluginCallError) as refused:
        await dispatcher.in_plugin_thread(lambda: None, plugin="p", hook="search")
    assert refused.value.kind == "rejected"
    assert observer.seen == [("p", "rejected")]
    with pytest.raises(TypeError, match="hook"):
        await dispatcher.in_plugin_thread(lambda: None, plugin="p")
    release.set()
    assert await held is True
    assert await dispatcher.in_plugin_thread(lambda: 7, plugin="p", hook="search") == 7
    dispatcher.close()


@pytest.mark.parametrize("one", [False, True], ids=["call_many", "call_one"])
async def test_caller_cancelled_while_waiting_cancels_its_calls_and_frees_the_probe(
    fast: Settings, kit: Any, one: bool
) -> None:
    """A caller cancelled while it waits (an outer timeout, shutdown) cancels the calls it started: the
    hanging plugin's bulkhead place comes back, and a half-open probe that will never be recorded is
    given back, so the breaker can probe again instead of rejecting everything until it reopens."""
    cancelled = asyncio.Event()

    hangs = _hangs_until_cancelled(cancelled)
    settings = msgspec.structs.replace(fast, deadlines=Deadlines(search=60_000))
    clock = VirtualClock()
    dispatcher = Dispatcher(settings, clock=clock)
    [plugin] = _loaded(settings, kit.plugin("hangs", search=hangs))
    guard = dispatcher.resilience.get("hangs", "search")
    guard.breaker.open_for(10)
    clock.advance(10)  # the next call is the half-open probe
    await _cancel_while_waiting(dispatcher, kit, plugin, cancelled, one=one)
    await asyncio.sleep(0)
    assert guard.bulkhead.active == 0
    assert guard.breaker.state == "half_open"
    assert guard.breaker.try_acquire()  # the lost probe was given back
    dispatcher.close()


async def test_a_call_that_ended_in_the_waits_last_pass_is_timed_not_zero(fast: Settings, kit: Any) -> None:
    """A suspended call whose future completed in the same loop pass as the wait's timeout has not been
    stamped yet when it is settled: its duration runs to now, not 0 s (which would hide a slow call)."""
    from fulcrum_core.dispatch.dispatcher import _Call

    seen: list[tuple[str, float]] = []

    class Timing:
        def observe(self, plugin: str, hook: str, outcome: str, seconds: float) -> None:
            seen.append((outcome, seconds))

    (plugin,) = _loaded(fast, kit.plugin("late", search=lambda ctx, query: []))
    dispatcher = Dispatcher(fast, observer=Timing())
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    call = _Call(plugin, dispatcher.resilience.get("late", "search"), future, loop.time() - 0.05)
    future.set_result([])  # done, but its done-callbacks (the end stamp) have not run yet
    assert call.ended == 0.0
    dispatcher._settle(call, "search", 1.0)
    assert len(seen) == 1
    assert seen[0][0] == "ok"
    assert seen[0][1] >= 0.05


_TRACE: contextvars.ContextVar[str] = contextvars.ContextVar("_TRACE", default="unset")


async def test_what_an_inline_first_step_leaves_behind_never_reaches_the_next_plugin(
    fast: Settings, kit: Any
) -> None:
    """Async impls that return inline share one spare task; one that left that task a cancellation, or
    set a context variable, hands neither to the next plugin's first step (nor to the caller)."""
    seen: dict[str, str] = {}

    async def cancels(ctx: Any, query: str) -> Any:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        return [kit.hit("cancels")]

    async def sets(ctx: Any, query: str) -> Any:
        _TRACE.set("sets")
        return [kit.hit("sets")]

    async def waits(ctx: Any, query: str) -> Any:
        seen["waits"] = _TRACE.get()
        await asyncio.sleep(0)
        return [kit.hit("waits")]

    async def reads(ctx: Any, query: str) -> Any:
        seen["reads"] = _TRACE.get()
        return [kit.hit("reads")]

    dispatcher = Dispatcher(fast)
    gathered = await _search(dispatcher, kit, _loaded(
        fast, kit.plugin("cancels", search=cancels), kit.plugin("waits", search=waits),
        kit.plugin("sets", search=sets), kit.plugin("reads", search=reads),
    ))
    dispatcher.close()
    assert gathered.degraded == []
    assert set(gathered.results) == {"cancels", "waits", "sets", "reads"}
    assert seen == {"waits": "unset", "reads": "unset"}
    assert _TRACE.get() == "unset"


def _eager_task_factory(
    loop: asyncio.AbstractEventLoop, coro: Any, *, context: contextvars.Context | None = None, **kw: Any
) -> asyncio.Task[Any]:
    """``asyncio.eager_task_factory`` (3.12+), or on 3.11 what it does: the coroutine takes its first
    step inside create_task, and the task goes on with the rest of it."""
    if sys.version_info >= (3, 12):
        return asyncio.eager_task_factory(loop, coro, context=context, **kw)  # type: ignore[attr-defined,no-any-return]
    from fulcrum_core.dispatch.eager import resume

    context = context if context is not None else contextvars.copy_context()
    try:
        first = context.run(coro.send, None)
    except StopIteration as stop:
        return asyncio.Task(_returns(stop.value), loop=loop, context=context, **kw)
    return asyncio.Task(resume(coro, first), loop=loop, context=context, **kw)


async def _returns(value: Any) -> Any:
    return value


async def test_a_loop_with_an_eager_task_factory_still_runs_the_plugins_that_wait(
    fast: Settings, kit: Any
) -> None:
    """Under an eager task factory the spare task starts inside create_task, before a plugin took it;
    it must still go on with the plugin that suspends (not end at once with ``None``)."""

    async def waits(ctx: Any, query: str) -> Any:
        await asyncio.sleep(0)
        return [kit.hit("waits")]

    async def returns(ctx: Any, query: str) -> Any:
        return [kit.hit("returns")]

    loop = asyncio.get_running_loop()
    factory = loop.get_task_factory()
    loop.set_task_factory(_eager_task_factory)
    try:
        dispatcher = Dispatcher(fast)
        [plugin] = _loaded(fast, kit.plugin("waits", search=waits))
        gathered = await _search(dispatcher, kit, _loaded(
            fast, kit.plugin("returns", search=returns), kit.plugin("waits", search=waits)
        ))
        one = await dispatcher.call_one(plugin, "search", kit.context(plugin), deadline_ms=100, query="q")
        dispatcher.close()
    finally:
        loop.set_task_factory(factory)
    assert gathered.degraded == []
    assert {pid: [hit.key for hit in hits] for pid, hits in gathered.results.items()} == {
        "returns": ["returns"], "waits": ["waits"]
    }
    assert [hit.key for hit in one] == ["waits"]


@pytest.mark.parametrize("one", [False, True], ids=["call_many", "call_one"])
async def test_caller_cancelled_while_waiting_tells_each_guard_the_call_ended(
    fast: Settings, kit: Any, one: bool
) -> None:
    """A CallGuard is told exactly once per admit how the call ended, also when the caller gave up on
    it (cancelled while it waited): a guard counting calls in flight gets its place back."""
    cancelled = asyncio.Event()

    hangs = _hangs_until_cancelled(cancelled)
    class InFlight:
        def __init__(self) -> None:
            self.active = 0
            self.told: list[str] = []

        def admit(self, plugin: str, hook: str) -> str | None:
            self.active += 1
            return None

        def record(self, plugin: str, hook: str, outcome: str, seconds: float) -> None:
            self.active -= 1
            self.told.append(outcome)

    settings = msgspec.structs.replace(fast, deadlines=Deadlines(search=60_000))
    in_flight = InFlight()
    dispatcher = Dispatcher(settings, guards=[in_flight])
    [plugin] = _loaded(settings, kit.plugin("hangs", search=hangs))
    await _cancel_while_waiting(dispatcher, kit, plugin, cancelled, one=one)
    dispatcher.close()
    assert in_flight.active == 0
    assert in_flight.told == ["rejected"]


@pytest.mark.parametrize("where", ["task", "thread"])
async def test_a_timeout_counts_as_a_slow_call(fast: Settings, kit: Any, where: str) -> None:
    """A call cut off at its deadline ran longer than the slow-call duration (the deadline): it counts
    as slow as well as failed, so one timeout in ten trips a 10 % slow-call threshold exactly, as in
    resilience4j (where a timed-out call's duration exceeds the threshold), however high the failure
    threshold is."""
    calls = [0]
    gate = threading.Event()

    async def sometimes_hangs(ctx: Any, query: str) -> Any:
        calls[0] += 1
        if calls[0] == 10:
            await asyncio.sleep(3600)
        return []

    def sometimes_blocks(ctx: Any, query: str) -> Any:
        calls[0] += 1
        if calls[0] == 10:
            gate.wait(5)
        return []

    conf = msgspec.structs.replace(
        fast,
        deadlines=Deadlines(search=300),
        breaker=BreakerConfig(
            sliding_window_size=10,
            minimum_number_of_calls=10,
            failure_rate_threshold=100,
            slow_call_rate_threshold=10,
        ),
    )
    dispatcher = Dispatcher(conf)
    impl = sometimes_hangs if where == "task" else sometimes_blocks
    plugins = _loaded(conf, kit.plugin("one-in-ten", search=impl))
    outcomes = []
    for _ in range(10):
        gathered = await _search(dispatcher, kit, plugins)
        outcomes.append(gathered.degraded[0].reason if gathered.degraded else "ok")
    gate.set()
    snapshot = dispatcher.resilience.get("one-in-ten", "search").breaker.snapshot()
    dispatcher.close()
    assert outcomes == ["ok"] * 9 + ["timeout"]
    assert snapshot.state == "open"
    assert (snapshot.slow_calls, snapshot.failed_calls) == (1, 1)


@pytest.mark.parametrize("blocker_first", [True, False], ids=["blocks-then-waits", "waits-then-blocks"])
async def test_a_plugin_blocking_the_loop_is_charged_not_the_plugins_it_starved(
    fast: Settings, kit: Any, blocker_first: bool
) -> None:
    """An ``async def`` that blocks the event loop (time.sleep) past its deadline is charged a timeout;
    a plugin left waiting while the loop was blocked may miss the page, but its breaker is not charged
    for a deadline it never had the loop for (the same rule as a call still queued for a thread)."""

    async def blocks(ctx: Any, query: str) -> Any:
        time.sleep(0.15)  # noqa: ASYNC251 - the plugin bug under test: blocking in a coroutine
        return [kit.hit("late")]

    async def waits(ctx: Any, query: str) -> Any:
        await asyncio.sleep(0.05)
        return [kit.hit("w")]

    one_call = BreakerConfig(sliding_window_size=1, minimum_number_of_calls=1)
    conf = msgspec.structs.replace(fast, breaker=one_call)
    dispatcher = Dispatcher(conf)
    made = [kit.plugin("blocks", search=blocks), kit.plugin("waits", search=waits)]
    plugins = _loaded(conf, *(made if blocker_first else made[::-1]))
    gathered = await _search(dispatcher, kit, plugins)
    dispatcher.close()
    reasons = {d.plugin: d.reason for d in gathered.degraded}
    assert reasons["blocks"] == "timeout"
    assert dispatcher.breaker_open("blocks", "search")
    assert not dispatcher.breaker_open("waits", "search")


@pytest.mark.parametrize("waits", [False, True], ids=["inline", "after-a-wait"])
async def test_checking_a_result_slowly_counts_against_the_plugin(
    settings: Settings, kit: Any, waits: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result that is cheap to return but slow to check costs the event loop as much as a slow plugin:
    the time spent checking it is the plugin's. Inline, it takes the call past its deadline (result
    dropped, a timeout); after a wait, it makes the call slow. Either way its breaker learns; before, the
    plugin looked instant and was never skipped. (The result bounds keep a valid result quick to check,
    so the check is slowed here: 40 ms against a 20 ms deadline.)"""
    from fulcrum_core.dispatch import dispatcher as module

    checked = module.check_list

    def slow_check(hook: str, value: Any, **seen: Any) -> list[Any]:
        time.sleep(0.04)
        return checked(hook, value, **seen)

    monkeypatch.setattr(module, "check_list", slow_check)
    offer = kit.offer("home.banner", "huge")

    async def huge(ctx: Any) -> Any:
        if waits:
            await asyncio.sleep(0)
        return [offer]

    conf = msgspec.structs.replace(
        settings,
        deadlines=Deadlines(home_slot_offers=20),
        breaker=BreakerConfig(sliding_window_size=1, minimum_number_of_calls=1),
    )
    dispatcher = Dispatcher(conf)
    plugins = _loaded(conf, kit.plugin("huge", home_slot_offers=huge))
    try:
        gathered = await dispatcher.call_many("home_slot_offers", [(p, kit.context(p)) for p in plugins])
    finally:
        dispatcher.close()
    snapshot = dispatcher.resilience.get("huge", "home_slot_offers").breaker.snapshot()
    if not waits:
        assert [(d.plugin, d.reason) for d in gathered.degraded] == [("huge", "timeout")]
        assert "check" in gathered.degraded[0].detail
    assert snapshot.state == "open"
    assert snapshot.slow_calls == 1



async def test_a_result_check_that_holds_the_loop_opens_the_breaker_after_a_wait(
    settings: Settings, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call that suspended and then hands back a result whose check holds the loop
    ``open_on_loop_hold`` deadlines or more opens its breaker at once, as a call holding the loop
    inline does: only the check ran on the loop, so it alone is judged, against the hook's deadline.
    A window that would take ten calls to judge shows the rates did not open it; a shorter check is
    only counted in it."""
    from fulcrum_core.dispatch import dispatcher as module

    checked = module.check_list
    check_s = [0.0]

    def slow_check(hook: str, value: Any, **seen: Any) -> list[Any]:
        time.sleep(check_s[0])
        return checked(hook, value, **seen)

    monkeypatch.setattr(module, "check_list", slow_check)
    offer = kit.offer("home.banner", "huge")

    async def huge(ctx: Any) -> Any:
        await asyncio.sleep(0)
        return [offer]

    conf = msgspec.structs.replace(
        settings,
        deadlines=Deadlines(home_slot_offers=50),
        breaker=BreakerConfig(sliding_window_size=10, minimum_number_of_calls=10, open_on_loop_hold=2),
    )
    dispatcher = Dispatcher(conf)
    plugins = _loaded(conf, kit.plugin("huge", home_slot_offers=huge))
    try:
        check_s[0] = 0.02  # well under two deadlines: counted in the window only
        await dispatcher.call_many("home_slot_offers", [(p, kit.context(p)) for p in plugins])
        assert not dispatcher.breaker_open("huge", "home_slot_offers")
        check_s[0] = 0.15  # three deadlines on the loop
        gathered = await dispatcher.call_many("home_slot_offers", [(p, kit.context(p)) for p in plugins])
    finally:
        dispatcher.close()
    assert gathered.degraded == []  # it answered; checking its answer is what held the loop
    assert dispatcher.breaker_open("huge", "home_slot_offers")
    assert dispatcher.resilience.get("huge", "home_slot_offers").breaker.snapshot().buffered_calls == 2

class _ListThatRaises(list):  # type: ignore[type-arg]
    """A list whose length cannot be read: garbage that breaks the result check itself."""

    def __len__(self) -> int:
        raise RuntimeError("no length for you")


@pytest.mark.parametrize("declared", ["async", "nonblocking"])
async def test_a_result_that_breaks_the_check_on_the_fast_path_is_invalid(
    fast: Settings, kit: Any, declared: str
) -> None:
    """A list subclass whose ``len`` raises, returned on the fast path, is that plugin's ``invalid``;
    before, the error escaped the dispatcher and failed the whole request. (A list subclass is refused
    as such now, before its ``len`` is asked: see ``test_chaos_review.py``.)"""

    async def odd_async(ctx: Any, query: str) -> Any:
        return _ListThatRaises([kit.hit("x")])

    @nonblocking
    def odd_sync(ctx: Any, query: str) -> Any:
        return _ListThatRaises([kit.hit("x")])

    @nonblocking
    def good(ctx: Any, query: str) -> Any:
        return [kit.hit("g")]

    dispatcher = Dispatcher(fast)
    odd = odd_async if declared == "async" else odd_sync
    plugins = _loaded(fast, kit.plugin("odd", search=odd), kit.plugin("good", search=good))
    gathered = await _search(dispatcher, kit, plugins)
    dispatcher.close()
    assert [(d.plugin, d.reason, d.detail) for d in gathered.degraded] == [
        ("odd", "invalid", "search must return a list of SearchHit or None, got _ListThatRaises")
    ]
    assert gathered.results == {"good": [kit.hit("g")]}


class _Unprintable(Exception):
    """An exception that cannot be turned into text."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.mark.parametrize("declared", ["async", "nonblocking", "thread"])
async def test_an_exception_that_cannot_be_printed_is_still_only_its_plugins_error(
    fast: Settings, kit: Any, declared: str
) -> None:
    """A plugin raising an exception whose ``str`` raises is left out as an ``error``; before, describing
    the exception raised in the dispatcher and failed the whole request."""

    async def raises_async(ctx: Any, query: str) -> Any:
        raise _Unprintable

    def raises_sync(ctx: Any, query: str) -> Any:
        raise _Unprintable

    @nonblocking
    def good(ctx: Any, query: str) -> Any:
        return [kit.hit("g")]

    impl = {"async": raises_async, "nonblocking": nonblocking(raises_sync), "thread": raises_sync}[declared]
    dispatcher = Dispatcher(fast)
    plugins = _loaded(fast, kit.plugin("odd", search=impl), kit.plugin("good", search=good))
    gathered = await _search(dispatcher, kit, plugins)
    dispatcher.close()
    assert gathered.results == {"good": [kit.hit("g")]}
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("odd", "error")]
    assert "_Unprintable" in gathered.degraded[0].detail


def _starved(kit: Any) -> Any:
    """A search impl with 60 ms of I/O, well within its 100 ms deadline, unless the loop is held."""

    async def starved(ctx: Any, query: str) -> Any:
        await asyncio.sleep(0.05)
        await asyncio.sleep(0.01)
        return [kit.hit("s")]

    return starved


async def test_a_plugin_blocking_the_loop_after_its_first_await_is_charged_not_the_plugins_it_starved(
    fast: Settings, kit: Any
) -> None:
    """A coroutine that blocks the loop (time.sleep) after its first await, in its own task, delays the
    end of the wait; a plugin whose I/O could not be served meanwhile is left out without its breaker
    being charged, and the blocker is recorded as a slow call."""

    async def blocks(ctx: Any, query: str) -> Any:
        await asyncio.sleep(0)
        time.sleep(0.15)  # noqa: ASYNC251 - the plugin bug under test
        return [kit.hit("late")]


    one_call = BreakerConfig(sliding_window_size=1, minimum_number_of_calls=1)
    conf = msgspec.structs.replace(fast, breaker=one_call)
    dispatcher = Dispatcher(conf)
    plugins = _loaded(conf, kit.plugin("blocks", search=blocks), kit.plugin("starved", search=_starved(kit)))
    await _search(dispatcher, kit, plugins)
    dispatcher.close()
    assert dispatcher.breaker_open("blocks", "search")
    assert not dispatcher.breaker_open("starved", "search")


async def test_a_thread_call_that_ran_its_whole_deadline_is_charged_however_late_the_loop_came_back(
    fast: Settings, kit: Any, release: threading.Event
) -> None:
    """A late loop excuses the calls that needed it (a coroutine whose I/O could not be served), not a
    plugin hung in its worker thread that had run there a whole deadline: on a saturated worker, whose
    loop comes back late after most waits, such a plugin's breaker would otherwise never open."""

    async def blocks(ctx: Any, query: str) -> Any:
        await asyncio.sleep(0)
        time.sleep(0.3)  # noqa: ASYNC251 - the plugin bug under test: the loop comes back 200 ms late
        return [kit.hit("late")]

    def hangs(ctx: Any, query: str) -> Any:
        release.wait()
        return []


    one_call = BreakerConfig(sliding_window_size=1, minimum_number_of_calls=1)
    conf = msgspec.structs.replace(fast, breaker=one_call)
    dispatcher = Dispatcher(conf)
    plugins = _loaded(
        conf, kit.plugin("blocks", search=blocks), kit.plugin("hangs", search=hangs),
        kit.plugin("starved", search=_starved(kit)),
    )
    try:
        gathered = await _search(dispatcher, kit, plugins)
    finally:
        release.set()
        dispatcher.close()
    assert {d.plugin: d.reason for d in gathered.degraded}["hangs"] == "timeout"
    assert dispatcher.breaker_open("hangs", "search")
    assert dispatcher.breaker_open("blocks", "search")
    assert not dispatcher.breaker_open("starved", "search")


async def test_no_probe_is_sent_while_calls_from_before_the_opening_still_hang(
    blamed: Settings, kit: Any, release: threading.Event
) -> None:
    """A plugin whose timed-out worker threads are still running is still hung: a half-open probe would
    only tie up one more thread each open period, until the plugin threads of every plugin are gone.
    No probe goes out until they have returned; then one does."""
    started = [0]

    def hangs(ctx: Any, query: str) -> Any:
        started[0] += 1
        release.wait()
        return []

    clock = VirtualClock()
    dispatcher = Dispatcher(blamed, clock=clock)
    plugins = _loaded(blamed, kit.plugin("hangs", search=hangs))
    for _ in range(2):
        await _search(dispatcher, kit, plugins)  # two timeouts: the breaker opens, two threads hang
    assert dispatcher.breaker_open("hangs", "search")
    clock.advance(10)
    refused = await _search(dispatcher, kit, plugins)
    assert started[0] == 2
    assert [d.reason for d in refused.degraded] == ["rejected"]
    assert "still running" in refused.degraded[0].detail
    release.set()
    guard = dispatcher.resilience.get("hangs", "search")
    for _ in range(200):  # the places come back through the loop
        if guard.bulkhead.active == 0:
            break
        await asyncio.sleep(0.01)
    probe = await _search(dispatcher, kit, plugins)
    dispatcher.close()
    assert probe.degraded == []
    assert started[0] == 3
    assert not dispatcher.breaker_open("hangs", "search")


async def test_a_plugin_hung_in_sync_code_holds_only_its_share_of_the_threads(
    settings: Settings, kit: Any, release: threading.Event
) -> None:
    """A plugin whose sync hooks hang (a thread cannot be stopped) holds at most its share of the
    plugin threads across all its hooks; its next sync call is refused at once, uncharged, and other
    plugins' sync calls still get threads. Before, a few plugins hung in several hooks took them all."""
    conf = msgspec.structs.replace(
        # 500 ms: the hung calls must have begun in their threads by then, and the fine plugin's thread
        # call must end within it, four times over; a loaded machine's threads missed 50 ms.
        settings, deadlines=Deadlines(search=500, feed_items=500),
        breaker=BreakerConfig(sliding_window_size=100, minimum_number_of_calls=100),  # never opens here
    )
    dispatcher = Dispatcher(conf, max_threads=4, threads_per_plugin=2)
    plugins = _loaded(
        conf,
        kit.plugin(
            "a-hung",
            search=lambda ctx, query: release.wait(),
            feed_items=lambda ctx, column: release.wait(),
        ),
        kit.plugin("b-fine", search=lambda ctx, query: [kit.hit("ok")]),
    )
    hung = plugins[0]
    try:
        first = await _search(dispatcher, kit, plugins)
        feeds = await dispatcher.call_many("feed_items", [(hung, kit.context(hung))], column="life")
        assert [d.reason for d in first.degraded] == ["timeout"]
        assert [d.reason for d in feeds.degraded] == ["timeout"]  # two threads held, across two hooks
        for _ in range(3):
            later = await _search(dispatcher, kit, plugins)
            assert [(d.plugin, d.reason) for d in later.degraded] == [("a-hung", "rejected")]
            assert "plugin threads in use" in later.degraded[0].detail
            assert [h.key for h in later.results["b-fine"]] == ["ok"]
        assert dispatcher.resilience.get("a-hung", "search").bulkhead.active == 1
        assert not dispatcher.breaker_open("a-hung", "search")
        with pytest.raises(PluginCallError) as info:
            await dispatcher.in_plugin_thread(lambda: None, plugin="a-hung", hook="execute_transaction")
        assert info.value.kind == "rejected"
    finally:
        release.set()
    for _ in range(200):  # the threads return: the plugin gets its share back
        if not dispatcher._threads.full("a-hung"):
            break
        await asyncio.sleep(0.01)
    assert await dispatcher.in_plugin_thread(lambda: 7, plugin="a-hung", hook="execute_transaction") == 7
    dispatcher.close()


async def test_plugins_hung_in_sync_code_leave_threads_for_the_others(
    settings: Settings, kit: Any, release: threading.Event
) -> None:
    """Two plugins hung in sync code, each up to its share, hold all four plugin threads: the pool starts
    others in their place, so a third plugin's sync calls still run in time. Before, they queued behind
    the hung calls and timed out, and that healthy plugin's breaker counted the timeouts."""
    conf = msgspec.structs.replace(
        # 500 ms: the hung calls must have begun in their threads by then (a loaded machine missed 50 ms).
        settings, deadlines=Deadlines(search=500),
        breaker=BreakerConfig(sliding_window_size=100, minimum_number_of_calls=100),  # never opens here
    )
    dispatcher = Dispatcher(conf, max_threads=4, threads_per_plugin=2)
    hung_a, hung_b, fine = _loaded(
        conf,
        kit.plugin("a-hung", search=lambda ctx, query: release.wait()),
        kit.plugin("b-hung", search=lambda ctx, query: release.wait()),
        kit.plugin("c-fine", search=lambda ctx, query: [kit.hit("ok")]),
    )
    def busy_search(ctx: Any, query: str) -> Any:
        time.sleep(0.05)
        return []

    busy = [kit.plugin(f"{name}-busy", search=busy_search) for name in "uvwxyz"]
    try:
        # A burst that queued behind the four threads once: what it leaves behind must not stop a loan.
        burst = _loaded(conf, *busy)
        queued = await dispatcher.call_many("search", [(p, kit.context(p)) for p in burst], query="q")
        assert queued.degraded == []
        for _ in range(2):
            hung = await dispatcher.call_many(
                "search", [(p, kit.context(p)) for p in (hung_a, hung_b)], query="q"
            )
            assert [d.reason for d in hung.degraded] == ["timeout", "timeout"]
        assert dispatcher._threads.full("a-hung")
        assert dispatcher._threads.full("b-hung")
        for _ in range(3):
            served = await dispatcher.call_many("search", [(fine, kit.context(fine))], query="q")
            assert served.degraded == []
            assert [h.key for h in served.results["c-fine"]] == ["ok"]
    finally:
        release.set()
    dispatcher.close()


def _default_executor() -> Any:
    """The host's default executor, made the running loop's (it shuts it down as it closes)."""
    from fulcrum_core.app import _default_pool

    pool = _default_pool()
    asyncio.get_running_loop().set_default_executor(pool)
    return pool


async def _lent_by(pool: Any, plugin: str, n: int) -> None:
    """Wait until ``plugin``'s jobs hold ``n`` lent threads (the cancel reaches the thread's future in a
    callback)."""
    for _ in range(200):
        if pool._size.lent_by.get(plugin, 0) == n:
            return
        await asyncio.sleep(0.01)
    assert pool._size.lent_by.get(plugin, 0) == n


_NEVER_OPENS = BreakerConfig(sliding_window_size=1000, minimum_number_of_calls=1000)


async def test_a_plugin_hung_in_to_thread_holds_only_its_share_of_the_loops_default_executor(
    settings: Settings, kit: Any, release: threading.Event
) -> None:
    """The host's default executor (``asyncio.to_thread``) knows whose hook submitted each job: a plugin
    whose ``to_thread`` calls hang and are given up at its deadline holds at most its share of threads;
    its next ``to_thread`` call fails at once (its call is an error, no thread is taken), while another
    plugin's and the host's still run. Before, each hung call lent one more thread, up to four times
    asyncio's size, and then every plugin's ``to_thread`` calls queued behind its own."""
    conf = msgspec.structs.replace(settings, deadlines=Deadlines(search=300), breaker=_NEVER_OPENS)
    pool = _default_executor()
    share, base = pool._size.share, pool._size.base

    async def hangs(ctx: Any, query: str) -> Any:
        await asyncio.to_thread(release.wait)  # submitted in its inline first step
        return []

    async def waits_then_hangs(ctx: Any, query: str) -> Any:
        await asyncio.sleep(0)  # submitted from its task
        await asyncio.to_thread(release.wait)
        return []

    async def fine(ctx: Any, query: str) -> Any:
        return [kit.hit(await asyncio.to_thread(lambda: "ok"))]

    dispatcher = Dispatcher(conf)
    hung, stepped, ok = _loaded(
        conf, kit.plugin("a-hung", search=hangs), kit.plugin("b-hung", search=waits_then_hangs),
        kit.plugin("c-fine", search=fine),
    )
    try:
        for plugin in (hung, stepped):  # its share of pages at once, each call hung, all given up
            pages = await asyncio.gather(*(_search(dispatcher, kit, [plugin]) for _ in range(share)))
            assert [d.reason for page in pages for d in page.degraded] == ["timeout"] * share
            await _lent_by(pool, plugin.id, share)
        for _ in range(3):
            later = await _search(dispatcher, kit, [hung, stepped, ok])
            refused = [(d.plugin, d.reason) for d in later.degraded]
            assert refused == [("a-hung", "error"), ("b-hung", "error")]
            assert all("ThreadShareUsed" in d.detail for d in later.degraded)
            assert [h.key for h in later.results["c-fine"]] == ["ok"]
        assert await asyncio.to_thread(lambda: "host") == "host"  # the host's own: never held back
        assert pool._size.lent_by == {"a-hung": share, "b-hung": share}
        assert pool.threads <= base + 2 * share  # the refused calls took no thread
    finally:
        release.set()
    await _lent_by(pool, "a-hung", 0)  # the hung calls return: the loans, and the plugins' shares, come back
    await _lent_by(pool, "b-hung", 0)
    again = await _search(dispatcher, kit, [hung])
    assert [d.reason for d in again.degraded] == []
    dispatcher.close()


async def test_calls_made_before_any_deadline_still_hold_only_a_plugins_share(
    settings: Settings, kit: Any, release: threading.Event
) -> None:
    """Pages arrive every 10 ms, each calling a plugin whose ``to_thread`` call hangs, so dozens of its calls
    are made before the first is given up: only its share of them ever runs (the rest wait behind its own,
    then fail once all of those hang), and another plugin's ``to_thread`` call is served at once. Before,
    each call got a thread, each given up lent one more, and the plugin took the executor to its ceiling."""
    conf = msgspec.structs.replace(settings, deadlines=Deadlines(search=300), breaker=_NEVER_OPENS)
    pool = _default_executor()
    share = pool._size.share

    async def hangs(ctx: Any, query: str) -> Any:
        await asyncio.to_thread(release.wait)
        return []

    async def fine(ctx: Any, query: str) -> Any:
        return [kit.hit(await asyncio.to_thread(lambda: "ok"))]

    dispatcher = Dispatcher(conf)
    hung, ok = _loaded(conf, kit.plugin("a-hung", search=hangs), kit.plugin("c-fine", search=fine))
    most = 0
    try:
        pages = []
        for _ in range(60):
            pages.append(asyncio.ensure_future(_search(dispatcher, kit, [hung])))
            await asyncio.sleep(0.01)
            most = max(most, pool._size.admitted.get("a-hung", 0))
        outcomes = {d.reason for page in await asyncio.gather(*pages) for d in page.degraded}
        assert outcomes <= {"timeout", "error", "rejected"}
        await _lent_by(pool, "a-hung", share)
        assert most <= share
        assert pool._size.lent <= share
        other = await _search(dispatcher, kit, [ok])
        assert other.degraded == []
        assert [h.key for h in other.results["c-fine"]] == ["ok"]
    finally:
        release.set()
    dispatcher.close()


async def test_one_call_fanning_out_to_threads_holds_only_its_plugins_share(
    settings: Settings, kit: Any, release: threading.Event
) -> None:
    """One hook call that gathers many hung ``to_thread`` calls runs only its plugin's share of them; the
    others wait behind its own and fail once those are given up, and another plugin is still served."""
    conf = msgspec.structs.replace(settings, deadlines=Deadlines(search=300), breaker=_NEVER_OPENS)
    pool = _default_executor()
    share = pool._size.share

    async def fans_out(ctx: Any, query: str) -> Any:
        await asyncio.gather(*(asyncio.to_thread(release.wait) for _ in range(pool._size.ceiling)))
        return []

    async def fine(ctx: Any, query: str) -> Any:
        return [kit.hit(await asyncio.to_thread(lambda: "ok"))]

    dispatcher = Dispatcher(conf)
    fan, ok = _loaded(conf, kit.plugin("a-fan", search=fans_out), kit.plugin("c-fine", search=fine))
    try:
        for _ in range(3):
            out = await _search(dispatcher, kit, [fan, ok])
            left_out = [(d.plugin, d.reason) for d in out.degraded]
            assert left_out in ([("a-fan", "timeout")], [("a-fan", "error")])
            assert [h.key for h in out.results["c-fine"]] == ["ok"]
            await _lent_by(pool, "a-fan", share)
        assert pool._size.lent == share
        assert "a-fan" not in pool._size.waiting  # its waiting calls failed as its loans filled its share
    finally:
        release.set()
    dispatcher.close()


async def test_a_transaction_being_checked_elsewhere_does_not_hold_back_the_half_open_probe(
    fast: Settings, kit: Any, release: threading.Event
) -> None:
    """Another request's params check (``in_plugin_thread``, which holds a place in the plugin's
    ``execute_transaction`` bulkhead while it runs within its deadline) is no call that timed out: the
    half-open probe still goes out. Before, every place held counted as a hung call, so a probe that
    met any concurrent check was refused as "still running 1 calls that timed out"."""
    results = iter([RuntimeError("a"), RuntimeError("b")])

    async def pay(ctx: Any, request: Any) -> Any:
        failure = next(results, None)
        if failure is not None:
            raise failure
        return TransactionResult(status="succeeded", reference="r")

    clock = VirtualClock()
    dispatcher = Dispatcher(fast, clock=clock)
    [payer] = _loaded(fast, kit.plugin("payer", execute_transaction=pay, transaction_types=["t"]))
    ctx = kit.context(payer)
    for _ in range(2):
        with pytest.raises(PluginCallError):
            await dispatcher.call_one(payer, "execute_transaction", ctx, deadline_ms=100, request=None)
    assert dispatcher.breaker_open("payer", "execute_transaction")
    clock.advance(10)
    checking = asyncio.ensure_future(
        dispatcher.in_plugin_thread(release.wait, plugin="payer", hook="execute_transaction")
    )
    guard = dispatcher.resilience.get("payer", "execute_transaction")
    for _ in range(200):
        if guard.bulkhead.active == 1:
            break
        await asyncio.sleep(0.01)
    try:
        probe = await dispatcher.call_one(payer, "execute_transaction", ctx, deadline_ms=100, request=None)
    finally:
        release.set()
        await checking
        dispatcher.close()
    assert probe == TransactionResult(status="succeeded", reference="r")
    assert not dispatcher.breaker_open("payer", "execute_transaction")


async def test_no_probe_is_sent_while_a_task_that_ignored_its_cancellation_still_runs(
    blamed: Settings, kit: Any
) -> None:
    """An ``async def`` that swallows its cancellation after a timeout is still running: like a hung
    thread, it holds back the half-open probe until it ends; then the probe goes out."""
    done = asyncio.Event()
    calls = [0]

    async def stubborn(ctx: Any, query: str) -> Any:
        calls[0] += 1
        if calls[0] > 2:
            return []
        while not done.is_set():
            try:
                await done.wait()
            except asyncio.CancelledError:
                continue  # ignores being given up on
        return []

    clock = VirtualClock()
    dispatcher = Dispatcher(blamed, clock=clock)
    plugins = _loaded(blamed, kit.plugin("stubborn", search=stubborn))
    try:
        for _ in range(2):
            assert [d.reason for d in (await _search(dispatcher, kit, plugins)).degraded] == ["timeout"]
        clock.advance(10)
        refused = await _search(dispatcher, kit, plugins)
        assert "still running 2 calls" in refused.degraded[0].detail
    finally:
        done.set()  # else a failure here hangs the loop's shutdown on the tasks that ignore cancelling
    guard = dispatcher.resilience.get("stubborn", "search")
    for _ in range(200):
        if guard.stuck == 0:
            break
        await asyncio.sleep(0.01)
    probe = await _search(dispatcher, kit, plugins)
    dispatcher.close()
    assert probe.degraded == []
    assert not dispatcher.breaker_open("stubborn", "search")


async def test_a_first_step_that_holds_the_loop_opens_its_breaker_at_once(
    settings: Settings, kit: Any
) -> None:
    """A coroutine blocking before its first await holds the event loop like a lying ``@nonblocking``
    function: twice its deadline or more opens its breaker on the first call, with the default window
    (ten calls at least); the plugin called beside it is not blamed."""
    offer = kit.offer("home.banner", "x")

    async def blocks_first(ctx: Any) -> Any:
        time.sleep(0.05)  # noqa: ASYNC251 - the fault under test: 2.5 deadlines of 20 ms, before any await
        return [offer]

    async def quick(ctx: Any) -> Any:
        return [kit.offer("home.banner", "q")]

    conf = msgspec.structs.replace(settings, deadlines=Deadlines(home_slot_offers=20))
    dispatcher = Dispatcher(conf)
    plugins = _loaded(
        conf, kit.plugin("blocks", home_slot_offers=blocks_first), kit.plugin("quick", home_slot_offers=quick)
    )
    try:
        gathered = await dispatcher.call_many("home_slot_offers", [(p, kit.context(p)) for p in plugins])
        again = await dispatcher.call_many("home_slot_offers", [(p, kit.context(p)) for p in plugins])
    finally:
        dispatcher.close()
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("blocks", "timeout")]
    assert "so its breaker opens" in gathered.degraded[0].detail
    assert [(d.plugin, d.reason) for d in again.degraded] == [("blocks", "rejected")]
    assert dispatcher.breaker_open("blocks", "home_slot_offers")
    assert not dispatcher.breaker_open("quick", "home_slot_offers")
    assert set(again.results) == {"quick"}


class _Passes:
    """An extra guard that lets every call through: it sends calls down the dispatcher's general path."""

    def admit(self, plugin: str, hook: str) -> str | None:
        return None

    def record(self, plugin: str, hook: str, outcome: Any, seconds: float) -> None:
        pass


@pytest.mark.parametrize("path", ["fast", "general"])
@pytest.mark.parametrize(
    "how",
    ["sync-raises", "async-raises", "async-suspends-after", "async-slow-to-check", "sync-slow-to-check"],
)
async def test_every_way_of_holding_the_loop_opens_the_breaker_at_once(
    settings: Settings, kit: Any, monkeypatch: pytest.MonkeyPatch, how: str, path: str
) -> None:
    """Holding the event loop 2.5 deadlines opens the breaker on the first call (default window: ten
    calls at least), however the call ends: raising after the hold, suspending after it (the call goes
    on), or returning a result whose check holds the loop; on the fast path and on the general one."""
    from fulcrum_core.dispatch import dispatcher as module

    offer = kit.offer("home.banner", "x")
    hold = 0.05  # 2.5 deadlines of 20 ms
    if how.endswith("slow-to-check"):
        checked = module.check_list
        validate = module._validate

        def slow_check(hook: str, value: Any, **seen: Any) -> list[Any]:
            time.sleep(hold)
            return checked(hook, value, **seen)

        def slow_validate(hook: str, value: Any, seen: Any) -> Any:
            time.sleep(hold)
            return validate(hook, value, seen)

        monkeypatch.setattr(module, "check_list", slow_check)
        monkeypatch.setattr(module, "_validate", slow_validate)

    @nonblocking
    def sync_impl(ctx: Any) -> Any:
        if how == "sync-raises":
            time.sleep(hold)
            raise RuntimeError("after holding the loop")
        return [offer]

    async def async_impl(ctx: Any) -> Any:
        if how != "async-slow-to-check":
            time.sleep(hold)  # noqa: ASYNC251 - the fault under test
        if how == "async-raises":
            raise RuntimeError("after holding the loop")
        if how == "async-suspends-after":
            await asyncio.sleep(0)
        return [offer]

    impl = sync_impl if how.startswith("sync") else async_impl
    conf = msgspec.structs.replace(settings, deadlines=Deadlines(home_slot_offers=20))
    dispatcher = Dispatcher(conf, guards=[_Passes()] if path == "general" else [])
    plugins = _loaded(conf, kit.plugin("holds", home_slot_offers=impl))
    try:
        await dispatcher.call_many("home_slot_offers", [(p, kit.context(p)) for p in plugins])
        again = await dispatcher.call_many("home_slot_offers", [(p, kit.context(p)) for p in plugins])
    finally:
        dispatcher.close()
    assert dispatcher.breaker_open("holds", "home_slot_offers")
    assert [(d.plugin, d.reason) for d in again.degraded] == [("holds", "rejected")]
    snapshot = dispatcher.resilience.get("holds", "home_slot_offers").breaker.snapshot()
    assert snapshot.state == "open"


@pytest.mark.parametrize("how", ["raises", "slow-to-check"])
async def test_call_one_opens_the_breaker_of_a_call_that_held_the_loop(
    settings: Settings, kit: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """``call_one`` (pages, transactions) judges a call the same way against the deadline it is given."""
    from fulcrum_core.dispatch import dispatcher as module

    offer = kit.offer("home.banner", "x")
    if how == "slow-to-check":
        validate = module._validate

        def slow_validate(hook: str, value: Any, seen: Any) -> Any:
            time.sleep(0.05)
            return validate(hook, value, seen)

        monkeypatch.setattr(module, "_validate", slow_validate)

    @nonblocking
    def impl(ctx: Any) -> Any:
        if how == "raises":
            time.sleep(0.05)
            raise RuntimeError("after holding the loop")
        return [offer]

    dispatcher = Dispatcher(settings)
    [plugin] = _loaded(settings, kit.plugin("holds", home_slot_offers=impl))
    try:
        with pytest.raises(PluginCallError) as info:
            await dispatcher.call_one(plugin, "home_slot_offers", kit.context(plugin), deadline_ms=20)
    finally:
        dispatcher.close()
    assert info.value.kind == ("error" if how == "raises" else "timeout")
    assert dispatcher.breaker_open("holds", "home_slot_offers")
