"""Tasks a plugin starts and leaves running: charged to its call, cancelled at the call's deadline, counted
and logged naming the plugin; tasks it awaits, and the host's own tasks, untouched (``leftovers.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from fulcrum_core.campaigns import CampaignStore, collect
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import REFRESH_AFTER, SqlPluginStorage
from fulcrum_core.dispatch import leftovers
from fulcrum_core.dispatch.clock import VirtualClock
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.observability.metrics import Metrics
from fulcrum_core.plugins import LoadedPlugin, get_plugin_manager
from fulcrum_core.settings import Deadlines, Settings
from fulcrum_sdk import nonblocking
from fulcrum_sdk.models import TransactionResult

from .cache.test_refresh_ahead import held_select, landed, wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.both_loops]

DEADLINE_MS = 100


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return msgspec.structs.replace(
        settings, deadlines=Deadlines(search=DEADLINE_MS, execute_transaction=DEADLINE_MS)
    )


@pytest.fixture
def lost() -> list[dict[str, Any]]:
    """What reaches the loop's exception handler ("Task exception was never retrieved"), once a test
    calls :func:`_catch_lost` on its loop."""
    return []


def _catch_lost(seen: list[dict[str, Any]]) -> None:
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: seen.append(context))


def _loaded(settings: Settings, *plugins: object) -> list[LoadedPlugin]:
    loaded = get_plugin_manager(settings, extra_plugins=plugins, load_entry_points=False)
    assert loaded.quarantined == {}
    return list(loaded.loaded.values())


def _dispatcher(settings: Settings) -> tuple[Dispatcher, Metrics]:
    metrics = Metrics()
    return Dispatcher(settings, observer=metrics), metrics


async def _past_deadline() -> None:
    """Let the calls' deadlines pass, and the loop run what they set off."""
    await asyncio.sleep(DEADLINE_MS / 1000 * 2)
    for _ in range(5):
        await asyncio.sleep(0)


def _forever(started: list[asyncio.Task[Any]], cancelled: list[bool]) -> Callable[[], Any]:
    async def forever() -> None:
        task = asyncio.current_task()
        assert task is not None
        started.append(task)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    return forever


async def test_a_task_left_running_is_cancelled_at_the_deadline_counted_and_logged(
    fast: Settings, kit: Any, log_records: Any
) -> None:
    """An ``async def`` hook that returns at once, leaving a task that never ends: its result is kept, the
    task is cancelled at the call's deadline (not before), counted and logged naming plugin and hook;
    the other plugin is untouched."""
    records = log_records("fulcrum.dispatch")
    started: list[asyncio.Task[Any]] = []
    cancelled: list[bool] = []
    forever = _forever(started, cancelled)

    async def leaves(ctx: Any, query: str) -> Any:
        asyncio.create_task(forever())  # noqa: RUF006 - the point: a task nobody keeps or awaits
        return [kit.hit("leaves")]

    async def fine(ctx: Any, query: str) -> Any:
        return [kit.hit("fine")]

    dispatcher, metrics = _dispatcher(fast)
    plugins = _loaded(fast, kit.plugin("leaves", search=leaves), kit.plugin("fine", search=fine))
    gathered = await dispatcher.call_many("search", [(p, kit.context(p)) for p in plugins], query="q")
    assert set(gathered.results) == {"leaves", "fine"}
    assert not gathered.degraded
    await asyncio.sleep(0)
    assert len(started) == 1
    assert not started[0].done()
    await _past_deadline()
    assert started[0].cancelled()
    assert cancelled == [True]
    assert metrics.leftovers == {("leaves", "search", "cancelled"): 1}
    lines = [r for r in records if "left a task behind" in r.getMessage()]
    assert [(r.plugin, r.hook) for r in lines] == [("leaves", "search")]  # type: ignore[attr-defined]
    assert "cancelled" in lines[0].getMessage()
    assert b'fulcrum_plugin_leftover_tasks_total{hook="search",outcome="cancelled",plugin="leaves"} 1.0' in (
        metrics.render()
    )


async def test_the_deadline_counts_from_the_calls_start_even_when_it_suspended(
    fast: Settings, kit: Any
) -> None:
    """A call that waits first, then starts a task (``loop.create_task``, ``ensure_future``) and a task
    that starts another: every one of them is cancelled at the call's deadline."""
    started: list[asyncio.Task[Any]] = []
    cancelled: list[bool] = []
    forever = _forever(started, cancelled)

    async def parent() -> None:
        asyncio.ensure_future(forever())  # noqa: RUF006
        await asyncio.sleep(3600)

    async def waits_then_leaves(ctx: Any, query: str) -> Any:
        await asyncio.sleep(0.01)
        asyncio.get_running_loop().create_task(parent())
        asyncio.ensure_future(forever())  # noqa: RUF006
        return []

    dispatcher, metrics = _dispatcher(fast)
    (plugin,) = _loaded(fast, kit.plugin("waits", search=waits_then_leaves))
    begun = asyncio.get_running_loop().time()
    gathered = await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
    assert gathered.results == {"waits": []}
    await asyncio.sleep(0.01)
    assert len(started) == 2
    assert not any(task.done() for task in started)
    for _ in range(400):
        if cancelled:
            break
        await asyncio.sleep(0.005)
    assert asyncio.get_running_loop().time() - begun >= DEADLINE_MS / 1000 * 0.9
    await _past_deadline()
    assert all(task.cancelled() for task in started)
    assert cancelled == [True, True]
    assert metrics.leftovers == {("waits", "search", "cancelled"): 3}  # the parent too


async def test_a_nonblocking_function_calling_loop_create_task_is_charged_too(
    fast: Settings, kit: Any
) -> None:
    """A plain ``@nonblocking`` hook runs inline on the loop; a task it starts there is its own."""
    started: list[asyncio.Task[Any]] = []
    cancelled: list[bool] = []
    forever = _forever(started, cancelled)

    @nonblocking
    def inline(ctx: Any, query: str) -> Any:
        asyncio.get_running_loop().create_task(forever())
        return [kit.hit("inline")]

    dispatcher, metrics = _dispatcher(fast)
    (plugin,) = _loaded(fast, kit.plugin("inline", search=inline))
    gathered = await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
    assert set(gathered.results) == {"inline"}
    await _past_deadline()
    assert cancelled == [True]
    assert metrics.leftovers == {("inline", "search", "cancelled"): 1}


async def test_a_leftover_that_raises_is_charged_and_never_reaches_asyncios_handler(
    fast: Settings, kit: Any, log_records: Any, lost: list[dict[str, Any]]
) -> None:
    """A task left behind that raises: logged and counted as the plugin's ``error``, its exception
    retrieved (nothing "never retrieved"); the breaker is not charged (one report per call)."""
    _catch_lost(lost)
    records = log_records("fulcrum.dispatch")

    async def fails() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("background bug")

    async def leaves(ctx: Any, query: str) -> Any:
        asyncio.create_task(fails())  # noqa: RUF006
        return []

    dispatcher, metrics = _dispatcher(fast)
    (plugin,) = _loaded(fast, kit.plugin("raiser", search=leaves))
    for _ in range(3):
        await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
    await _past_deadline()
    gc.collect()
    await asyncio.sleep(0)
    assert lost == []
    assert metrics.leftovers == {("raiser", "search", "error"): 3}
    lines = [r.getMessage() for r in records if "left a task behind" in r.getMessage()]
    assert len(lines) == 3
    assert all("RuntimeError: background bug" in line for line in lines)
    assert dispatcher.resilience.get("raiser", "search").breaker.state == "closed"
    assert metrics.call_counts() == {("raiser", "search", "ok"): 3}


async def test_a_leftover_that_will_not_stop_holds_back_probes_until_it_ends(
    fast: Settings, kit: Any
) -> None:
    """A leftover that catches its cancellation and goes on counts among its guard's stuck calls (no
    half-open probe goes out meanwhile) until it ends; an error it raises then is still reported."""
    stop = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await stop.wait()
            raise LookupError("late failure") from None

    async def leaves(ctx: Any, query: str) -> Any:
        asyncio.create_task(stubborn())  # noqa: RUF006
        return []

    dispatcher, metrics = _dispatcher(fast)
    (plugin,) = _loaded(fast, kit.plugin("stubborn", search=leaves))
    await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
    guard = dispatcher.resilience.get("stubborn", "search")
    await _past_deadline()
    assert guard.stuck == 1
    assert metrics.leftovers == {("stubborn", "search", "cancelled"): 1}
    stop.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert guard.stuck == 0
    assert metrics.leftovers == {("stubborn", "search", "cancelled"): 1, ("stubborn", "search", "error"): 1}


async def test_a_task_the_plugin_awaits_is_neither_cancelled_nor_counted(
    fast: Settings, kit: Any, lost: list[dict[str, Any]]
) -> None:
    """Tasks awaited within the call, one that raises and is handled among them, and a short write
    fired off and left to finish within the deadline: nothing is cancelled, counted or lost."""
    _catch_lost(lost)
    written: list[str] = []

    async def work(n: int) -> int:
        await asyncio.sleep(0.005)
        return n

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("handled")

    async def write() -> None:
        await asyncio.sleep(0.02)
        written.append("done")

    async def awaits(ctx: Any, query: str) -> Any:
        one = asyncio.create_task(work(1))
        two = asyncio.ensure_future(work(2))
        failing = asyncio.create_task(fails())
        with contextlib.suppress(ValueError):
            await failing
        async with asyncio.TaskGroup() as group:
            three = group.create_task(work(3))
        asyncio.create_task(write())  # noqa: RUF006 - fire and forget, done well within the deadline
        return [kit.hit(str(await one + await two + three.result()))]

    dispatcher, metrics = _dispatcher(fast)
    (plugin,) = _loaded(fast, kit.plugin("awaits", search=awaits))
    gathered = await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
    assert [hit.key for hit in gathered.results["awaits"]] == ["6"]
    await _past_deadline()
    gc.collect()
    await asyncio.sleep(0)
    assert written == ["done"]
    assert metrics.leftovers == {}
    assert lost == []


async def test_call_one_and_a_thread_call_are_bounded_alike(fast: Settings, kit: Any) -> None:
    """``call_one`` (the transaction path) bounds a leftover by the deadline it was given, and a plain
    hook in a worker thread that starts a task on the loop (``run_coroutine_threadsafe``) is charged."""
    started: list[asyncio.Task[Any]] = []
    cancelled: list[bool] = []
    forever = _forever(started, cancelled)
    loop = asyncio.get_running_loop()

    async def pays(ctx: Any, request: Any) -> Any:
        asyncio.create_task(forever())  # noqa: RUF006
        return TransactionResult(status="succeeded", reference="r-1")

    def threaded(ctx: Any, query: str) -> Any:
        asyncio.run_coroutine_threadsafe(forever(), loop)  # started on the loop, left running
        return []

    dispatcher, metrics = _dispatcher(fast)
    (payer,) = _loaded(fast, kit.plugin("payer", execute_transaction=pays, transaction_types=["transfer"]))
    result = await dispatcher.call_one(payer, "execute_transaction", kit.context(payer), deadline_ms=100,
                                       request=None)
    assert result.status == "succeeded"
    await _past_deadline()
    assert cancelled == [True]
    assert metrics.leftovers == {("payer", "execute_transaction", "cancelled"): 1}
    slow = msgspec.structs.replace(fast, deadlines=Deadlines(search=2_000))  # a thread on a loaded machine
    dispatcher, metrics = _dispatcher(slow)
    (searcher,) = _loaded(slow, kit.plugin("threaded", search=threaded))
    gathered = await dispatcher.call_many("search", [(searcher, kit.context(searcher))], query="q")
    assert gathered.results == {"threaded": []}
    for _ in range(100):
        if len(cancelled) == 2:
            break
        await asyncio.sleep(0.05)
    assert metrics.leftovers == {("threaded", "search", "cancelled"): 1}


async def test_a_campaign_call_in_the_background_is_bounded_alike(settings: Settings, kit: Any) -> None:
    """``home_slot_campaigns``, called by the host's campaign store in a task of its own: the task the
    plugin leaves is cancelled at the home page's deadline and charged to the campaign hook; the store's
    own call (a host task) lands with the plugin's offers."""
    started: list[asyncio.Task[Any]] = []
    cancelled: list[bool] = []
    forever = _forever(started, cancelled)

    async def campaigns(ctx: Any) -> Any:
        asyncio.create_task(forever())  # noqa: RUF006
        return [kit.offer("home.banner", "c1")]

    conf = msgspec.structs.replace(settings, deadlines=Deadlines(home_slot_offers=DEADLINE_MS))
    dispatcher, metrics = _dispatcher(conf)
    (plugin,) = _loaded(conf, kit.plugin("camp", home_slot_campaigns=campaigns))
    store = CampaignStore(dispatcher, 60_000)
    page = SimpleNamespace(
        now=kit.now, settings_token=None, settings_of=lambda p: p.settings,
        settings_variants_of=lambda p: [p.settings],
    )
    _, waiting = store.for_page([plugin], page)  # type: ignore[arg-type]
    assert await collect(waiting, {}, asyncio.get_running_loop().time() + 5) == []
    assert [offer.key for offer in waiting[0][1].result()] == ["c1"]
    await _past_deadline()
    assert cancelled == [True]
    assert metrics.leftovers == {("camp", "home_slot_campaigns", "cancelled"): 1}


async def test_a_refresh_ahead_started_from_a_plugins_call_is_the_hosts(
    fast: Settings, kit: Any, db: Database
) -> None:
    """A plugin's storage read that starts a refresh-ahead (a host task): the refresh outlives the call's
    deadline (held in the database), is not cancelled and not counted, and lands."""
    clock = VirtualClock(100.0)
    storage = SqlPluginStorage(db, "p", cache_ms=1000, clock=clock)
    other = SqlPluginStorage(db, "p")
    other.add("n", 1)
    assert await storage.acounter("n") == 1
    other.add("n", 1)
    clock.advance((REFRESH_AFTER[1] + 1) / 2)  # past the refresh point, before the TTL

    async def reads(ctx: Any, query: str) -> Any:
        return [kit.hit(str(await storage.acounter("n")))]

    dispatcher, metrics = _dispatcher(fast)
    (plugin,) = _loaded(fast, kit.plugin("reader", search=reads))
    assert storage.cache is not None
    with held_select(db) as (selected, release):
        gathered = await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
        assert [hit.key for hit in gathered.results["reader"]] == ["1"]  # served from the cache
        (flight,) = storage.cache.flights.pending()
        await wait_for(selected)
        await _past_deadline()
        assert not flight.done()  # held past the call's deadline, not cancelled
        release.set()
        await landed(storage)
    assert not flight.cancelled()
    assert flight.exception() is None
    assert metrics.leftovers == {}
    gathered = await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
    assert [hit.key for hit in gathered.results["reader"]] == ["2"]  # the refresh landed


async def test_the_watch_wraps_a_task_factory_set_before_it(fast: Settings, kit: Any) -> None:
    """A factory already on the loop (a tracer's, an eager one) still makes every task; the watch only
    tags them. Each loop the host serves on (uvloop passes no ``context`` when none is given)."""
    loop = asyncio.get_running_loop()
    before = loop.get_task_factory()
    made: list[Any] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    if isinstance(before, leftovers.TaskWatch):  # installed by an earlier test on this loop
        watch, kept = before, before.previous
        watch.previous = factory
    else:
        kept = None
        loop.set_task_factory(factory)
        watch = leftovers.install(loop)
    try:
        assert leftovers.install(loop) is watch
        assert loop.get_task_factory() is watch
        started: list[asyncio.Task[Any]] = []
        cancelled: list[bool] = []
        forever = _forever(started, cancelled)

        async def leaves(ctx: Any, query: str) -> Any:
            asyncio.create_task(forever())  # noqa: RUF006
            return []

        dispatcher, metrics = _dispatcher(fast)
        (plugin,) = _loaded(fast, kit.plugin("leaves", search=leaves))
        await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
        host = leftovers.host_task(asyncio.sleep(0.3))
        await _past_deadline()
        assert cancelled == [True]
        assert not host.done()
        assert metrics.leftovers == {("leaves", "search", "cancelled"): 1}
        assert any(getattr(coro, "__name__", "") == "forever" for coro in made)
        await host
    finally:
        if isinstance(before, leftovers.TaskWatch):
            before.previous = kept
        loop.set_task_factory(before)


async def test_host_code_called_inline_starts_host_tasks(fast: Settings, kit: Any) -> None:
    """Host code that a plugin's inline code calls, starting a task with :func:`host_task`: never the
    plugin's, nor the tasks that task starts."""
    children: list[asyncio.Task[Any]] = []

    async def host_work() -> None:
        children.append(asyncio.create_task(asyncio.sleep(0.3)))
        await asyncio.sleep(0.3)

    tasks: list[asyncio.Task[Any]] = []

    @nonblocking
    def calls_host(ctx: Any, query: str) -> Any:
        tasks.append(leftovers.host_task(host_work()))
        return []

    dispatcher, metrics = _dispatcher(fast)
    (plugin,) = _loaded(fast, kit.plugin("host-user", search=calls_host))
    await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
    await _past_deadline()
    assert not tasks[0].done()
    assert not children[0].done()
    await tasks[0]
    assert metrics.leftovers == {}


def test_the_page_stays_whole_and_metrics_and_logs_name_the_plugin(
    make_app: Any, kit: Any, log_records: Any
) -> None:
    """Through HTTP: a plugin leaving a task that never ends still has its items on a 200 page with the
    others', and /metrics and the log name it once the deadline passed."""
    records = log_records("fulcrum.dispatch")

    async def leaves(ctx: Any) -> Any:
        asyncio.create_task(asyncio.sleep(3600))  # noqa: RUF006
        return [kit.offer("home.banner", "left")]

    app = make_app(
        kit.plugin("leaves", home_slot_offers=leaves),
        kit.plugin("good", home_slot_offers=nonblocking(lambda ctx: [kit.offer("home.kingkong", "k")])),
        deadlines=Deadlines(home_slot_offers=DEADLINE_MS), home_budget_ms=10_000,
    )
    response = app.get("/v1/home")
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] == []
    assert [i["key"] for i in body["slots"]["home.banner/v1"]] == ["left"]
    assert [i["key"] for i in body["slots"]["home.kingkong/v1"]] == ["k"]
    sample = (
        'fulcrum_plugin_leftover_tasks_total{hook="home_slot_offers",outcome="cancelled",plugin="leaves"}'
    )
    for _ in range(100):
        text = app.get("/metrics", token=app.token("ops", ["platform:read"], kind="staff")).text
        if sample in text:
            break
        time.sleep(0.02)  # the app runs on its own thread
    assert f"{sample} 1.0" in text
    assert any(
        getattr(r, "plugin", None) == "leaves" and "left a task behind" in r.getMessage() for r in records
    )


def test_the_host_starts_its_tasks_with_host_task() -> None:
    """Host code may run with a plugin's code on the stack, so it starts no task the plain way: each
    would be taken for the plugin's and cancelled at its deadline. The one task group the host opens
    (the request's record prefetch, before any plugin runs) and the server's own main task (made by
    ``fulcrum serve``'s loop keeper before the loop runs, so before any plugin is loaded) are listed
    here on purpose."""
    import re
    from pathlib import Path

    import fulcrum_core

    root = Path(fulcrum_core.__file__).parent
    plain = re.compile(r"\b(create_task|ensure_future|start_soon)\(|\bTaskGroup\(\)")
    found = sorted(
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py")
        if path.name != "leftovers.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if plain.search(line)
    )
    assert [where.split(":")[0] for where in found] == ["cli/serve.py", "dispatch/context.py"]


class _Unprintable:
    """A module name whose formatting raises: plugin data the host's log line must not run."""

    def __format__(self, spec: str) -> str:
        raise KeyboardInterrupt("no")

    def __str__(self) -> str:
        raise KeyboardInterrupt("no")

    __repr__ = __str__


@pytest.mark.parametrize("kind", ["nonblocking", "async", "odd-factory"])
async def test_a_task_factory_a_plugin_replaces_is_put_back_after_its_call(
    fast: Settings, kit: Any, log_records: Any, kind: str
) -> None:
    """A plugin whose code replaces the loop's task factory (``set_task_factory(None)``, as an
    instrumentation library might) has the watch put back as soon as its call on the loop returns,
    logged naming the call: the tasks other plugins then leave running are still cancelled at their
    calls' deadlines. Before, they ran on untagged, never cancelled nor counted, for every later request
    of the worker. Nobody is charged (a worker thread of another plugin may have done it meanwhile),
    and a factory whose names are odd objects is described without running them."""
    records = log_records("fulcrum.dispatch")
    started: list[asyncio.Task[Any]] = []
    cancelled: list[bool] = []
    forever = _forever(started, cancelled)

    def odd(loop: Any, coro: Any, **kwargs: Any) -> Any:
        return asyncio.Task(coro, loop=loop, **kwargs)

    odd.__module__ = _Unprintable()  # type: ignore[assignment]

    def reset() -> list[Any]:
        asyncio.get_running_loop().set_task_factory(odd if kind == "odd-factory" else None)
        return [kit.hit("resets")]

    async def resets_async(ctx: Any, query: str) -> Any:
        return reset()

    async def leaves(ctx: Any, query: str) -> Any:
        asyncio.create_task(forever())  # noqa: RUF006 - the point: a task nobody keeps or awaits
        return [kit.hit("leaves")]

    resets = resets_async if kind == "async" else nonblocking(lambda ctx, query: reset())
    dispatcher, metrics = _dispatcher(fast)
    loaded = _loaded(fast, kit.plugin("resets", search=resets), kit.plugin("leaves", search=leaves))
    by_id = {p.id: p for p in loaded}
    plugins = [by_id["resets"], by_id["leaves"]]  # the reset first, then a task left in the same dispatch
    loop = asyncio.get_running_loop()
    for _ in range(3):
        gathered = await dispatcher.call_many("search", [(p, kit.context(p)) for p in plugins], query="q")
        assert set(gathered.results) == {"resets", "leaves"}
        assert gathered.degraded == []
        assert isinstance(loop.get_task_factory(), leftovers.TaskWatch)
    await _past_deadline()
    assert len(started) == 3
    assert all(task.cancelled() for task in started)
    assert metrics.leftovers == {("leaves", "search", "cancelled"): 3}
    lines = [r.getMessage() for r in records if "task factory was replaced" in r.getMessage()]
    found = "an object" if kind == "odd-factory" else "none"
    assert lines == [f"the event loop's task factory was replaced by plugin code (found {found}, after "
                     "resets's search ran on the loop); the host's was put back, so the tasks plugins "
                     "start stay bounded by their calls' deadlines"] * 3
    dispatcher.close()


async def test_a_task_factory_replaced_by_a_single_call_is_put_back_when_it_returns(
    fast: Settings, kit: Any
) -> None:
    """``call_one`` (the transaction and page path) puts the watch back when the call returns: the
    factory stayed replaced until the next dispatch."""

    def execute(ctx: Any, request: Any) -> TransactionResult:
        asyncio.get_running_loop().set_task_factory(None)
        return TransactionResult(status="succeeded", reference="r")

    dispatcher, _metrics = _dispatcher(fast)
    (plugin,) = _loaded(fast, kit.plugin("payer", execute_transaction=nonblocking(execute)))
    loop = asyncio.get_running_loop()
    result = await dispatcher.call_one(
        plugin, "execute_transaction", kit.context(plugin), deadline_ms=DEADLINE_MS, request=None
    )
    assert result.status == "succeeded"
    assert isinstance(loop.get_task_factory(), leftovers.TaskWatch)
    dispatcher.close()


async def test_a_task_factory_replaced_outside_a_call_is_put_back_at_the_next_dispatch(
    fast: Settings, kit: Any, log_records: Any
) -> None:
    """Replaced where no call's timing sees it (a task or callback of a plugin's), the factory is put
    back when the next dispatch starts, and logged."""
    records = log_records("fulcrum.dispatch")

    async def fine(ctx: Any, query: str) -> Any:
        return [kit.hit("fine")]

    dispatcher, _metrics = _dispatcher(fast)
    plugins = _loaded(fast, kit.plugin("fine", search=fine))
    await dispatcher.call_many("search", [(p, kit.context(p)) for p in plugins], query="q")
    loop = asyncio.get_running_loop()
    watch = loop.get_task_factory()
    assert isinstance(watch, leftovers.TaskWatch)

    def other_factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(other_factory)
    gathered = await dispatcher.call_many("search", [(p, kit.context(p)) for p in plugins], query="q")
    assert set(gathered.results) == {"fine"}
    assert loop.get_task_factory() is watch
    (line,) = [r.getMessage() for r in records if "task factory was replaced" in r.getMessage()]
    assert "other_factory" in line
    dispatcher.close()


async def test_a_task_a_plugin_cancels_before_it_ran_closes_its_coroutine(fast: Settings, kit: Any) -> None:
    """A plugin's tasks run their coroutines guarded (``SystemExit`` carried as its error), each step handed
    on: one cancelled before its first step closes the plugin's coroutine as asyncio would, instead of
    leaving it "never awaited" (a warning at collection, an error in these tests); one that runs returns
    its value."""
    values: list[Any] = []

    async def work() -> int:
        await asyncio.sleep(0)
        return 7

    async def starts(ctx: Any, query: str) -> Any:
        asyncio.create_task(work()).cancel()
        values.append(await asyncio.create_task(work()))
        return []

    dispatcher, _ = _dispatcher(fast)
    (plugin,) = _loaded(fast, kit.plugin("starts", search=starts))
    gathered = await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    assert gathered.degraded == []
    assert values == [7]


@pytest.mark.anyio
async def test_a_python_without_unregister_task_says_the_worker_may_wait(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Taking a task that ignores its cancellation off the loop's list uses asyncio's private
    ``_unregister_task``; on a Python without it the host cannot, and says so rather than nothing."""
    free = asyncio.Event()

    async def stubborn() -> None:
        while not free.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await free.wait()

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    task.cancel()
    leftovers.given_up(task)
    monkeypatch.delattr(asyncio.tasks, "_unregister_task")
    caplog.set_level("WARNING", logger="fulcrum.dispatch")
    try:
        assert await leftovers.stop_waiting_for_given_up(0.05) == 1
    finally:
        free.set()  # else the test's own loop would wait for it as it closes
        await task
    assert any("no _unregister_task" in r.getMessage() for r in caplog.records)
