"""Chaos review: what a careless or hostile plugin can do to the page and to other customers through
what the host shares with it (thread pools, validated results, the event loop's own exceptions)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import msgspec
import pytest
from fulcrum_core.app import _default_pool
from fulcrum_core.dispatch import leftovers
from fulcrum_core.dispatch.breaker import BreakerConfig
from fulcrum_core.settings import Deadlines
from fulcrum_sdk import nonblocking
from fulcrum_sdk.errors import DataUnavailable, OutcomeUnknown, TransactionRefused
from fulcrum_sdk.models import (
    Action,
    LocalizedText,
    SlotOffer,
    TransactionRequest,
    TransactionResult,
    TransactionType,
)
from fulcrum_sdk.testing import PERSONAS

from tests.core.test_dispatch_base_exceptions import _post, _post_left_unknown, _tx_plugin
from tests.core.test_dispatch_daemon_threads import exits

C3 = PERSONAS["young_professional"].id
SHORT = Deadlines(home_slot_offers=20)
# A breaker that does not open within the test. With the default one the same happens, only more
# slowly: each call in flight when the first timeouts land leaves its thread, and since the cancelled
# task ends at once no hung call holds back the half-open probes, each of which leaves one more.
# No breaker opens during these tests: not by rates, and not because a loaded machine's loop was held
# for twice a deadline while a plugin's first step ran (a full run once saw that open one mid-test).
PATIENT = BreakerConfig(sliding_window_size=200, minimum_number_of_calls=200, open_on_loop_hold=0)


def _degraded(body: dict[str, Any]) -> dict[str, str]:
    return {d["plugin"]: d["reason"] for d in body["degraded"]}


def _keys(body: dict[str, Any], slot: str) -> list[tuple[str, str]]:
    return [(i["plugin"], i["key"]) for i in body["slots"][slot]]


class _Params(msgspec.Struct, frozen=True):
    amount_fen: int


def _payer(kit: Any, execute: Callable[..., Any]) -> Any:
    def register_transaction_types(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(key="x.pay", name=LocalizedText(zh_CN="付款"), params=_Params,
                                 risk_level="R1", amount_field="amount_fen"))

    return kit.plugin(
        "payer",
        transaction_types=["x.pay"],
        register_transaction_types=register_transaction_types,
        execute_transaction=execute,
    )


def _on_its_own_loop(loop: str, page: Callable[[], Any]) -> Any:
    """What ``page()`` returns, run on a fresh event loop of kind ``loop`` in a thread of its own; fails
    the test when something raised out of the loop (a plugin's raise that stopped it is the finding)."""
    outcome: dict[str, Any] = {}

    def serve() -> None:
        factory = None
        if loop == "uvloop":
            import uvloop

            factory = uvloop.new_event_loop
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                outcome["value"] = runner.run(page())
        except BaseException as exc:
            outcome["raised"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(10)
    assert "raised" not in outcome, f"the plugin's {outcome.get('raised')!r} stopped the event loop"
    return outcome["value"]


def _succeeds(ctx: Any, request: TransactionRequest) -> TransactionResult:
    return TransactionResult(status="succeeded", reference="r-1")


def test_a_plugin_offloading_to_asyncio_threads_cannot_stall_transactions(
    make_app: Any, kit: Any, release: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``async def`` plugin that hands a blocking call with no timeout to ``asyncio.to_thread`` (the
    usual way to call a blocking client from async code) leaves one of the event loop's default executor
    threads hung per call: the task obeys the cancel, the thread cannot. asyncio's executor is small
    (``min(32, cpus + 4)``), and the host's transaction journal ran its reads and writes in it, so every
    customer's transaction then waited for the partner's hung calls. Each plugin now holds only its share
    of that executor; here the executor cannot tell whose calls they are, so they fill it as many hung
    plugins would, and the journal must not need it."""
    monkeypatch.setattr(leftovers, "plugin_now", lambda: None)

    async def offloads(ctx: Any) -> Any:
        await asyncio.to_thread(release.wait)
        return []

    app = make_app(
        kit.plugin("offloads", home_slot_offers=offloads),
        _payer(kit, nonblocking(_succeeds)),
        deadlines=SHORT,
        breaker=PATIENT,
    )
    hung = 0
    for _ in range(400):  # until more hung than the default executor holds with up to 36 cores
        left_out = _degraded(app.get("/v1/home").json())
        # On a loaded machine a call can find the last one's cancelled task still in the bulkhead.
        assert left_out in ({"offloads": "timeout"}, {"offloads": "rejected"})
        hung += left_out == {"offloads": "timeout"}
        if hung == 40:
            break
    assert hung == 40
    timer = threading.Timer(10, release.set)  # unblocks the test if the journal waits for the plugin
    timer.start()
    try:
        started = time.monotonic()
        response = _post(app)
        waited = time.monotonic() - started
    finally:
        timer.cancel()
        release.set()
    assert response.status_code == 201, response.text
    assert waited < 5, f"the transaction waited {waited:.1f} s for a plugin's hung threads"


def test_a_plugin_hung_in_to_thread_leaves_the_default_executor_to_the_others(
    make_app: Any, kit: Any, release: threading.Event
) -> None:
    """One plugin's ``asyncio.to_thread`` calls hang, page after page, while another plugin's own calls
    to the loop's default executor return at once: the second's call gets a thread on every page. The
    first holds only its share of that executor (its calls beyond fail at once). Before, each of its hung
    calls lent one more thread until the executor's ceiling, four times its size, and then every other
    plugin's calls queued behind its own and timed out.

    What is waited for is the event meant, not the 150 ms deadline: a loaded machine can hold the event
    loop past it (either plugin then left out as a timeout, the second's call run, the first's refused),
    and can leave the first's call unstarted at it (withdrawn, it takes no thread)."""
    hung = threading.Semaphore(0)  # released by each of the first plugin's calls that got a thread
    got_thread = threading.Semaphore(0)  # released by each of the second plugin's calls, as it runs

    def hang() -> None:
        hung.release()
        release.wait()

    def fetch() -> str:
        got_thread.release()
        return "fetched"

    async def offloads(ctx: Any) -> Any:
        await asyncio.to_thread(hang)
        return []

    async def fetches(ctx: Any) -> Any:
        # Shielded: a page cut short at its deadline leaves the call queued, not withdrawn, so the test
        # can wait for it to get a thread (which it never did once the hung calls reached the ceiling).
        call = asyncio.get_running_loop().run_in_executor(None, fetch)
        return [kit.offer("home.banner", await asyncio.shield(call))]

    app = make_app(
        kit.plugin("offloads", home_slot_offers=offloads), kit.plugin("fetches", home_slot_offers=fetches),
        deadlines=Deadlines(home_slot_offers=150), breaker=PATIENT,
    )
    made = _default_pool()
    ceiling, share = made._size.ceiling, made._size.share
    made.shutdown()
    outcomes: list[str] = []
    try:
        # Until its share hung and its refusals make ceiling + 5 calls that took a thread or were refused
        # (a call withdrawn unstarted at the deadline takes none, a held loop turns a refusal into a
        # timeout), within a bound.
        while outcomes.count("error") < ceiling - share + 5 and len(outcomes) < 2 * (ceiling + 5):
            body = app.get("/v1/home").json()
            left_out = _degraded(body)
            assert got_thread.acquire(timeout=30), f"page {len(outcomes)}: fetches' call got no thread"
            if "fetches" in left_out:  # the loop held past the deadline on a loaded machine
                assert left_out["fetches"] == "timeout", left_out
            else:
                assert ("fetches", "fetched") in _keys(body, "home.banner/v1")
            outcomes.append(left_out["offloads"])
        for n in range(share):
            assert hung.acquire(timeout=30), f"only {n} of offloads' calls got a thread"
        assert not hung.acquire(blocking=False), "offloads held more threads than its share"
    finally:
        release.set()
    # Its calls timed out (hung, or withdrawn unstarted) until its share was hung, then failed at once
    # (a timeout among those: the loop held past the deadline before it saw the refusal).
    assert set(outcomes) == {"timeout", "error"}, outcomes
    assert outcomes.index("error") >= share, outcomes
    assert outcomes.count("error") >= ceiling - share + 5, outcomes


class _TimeBomb(tzinfo):
    """A plugin's own time zone: UTC+8 until armed, then every question about its offset raises."""

    armed = False

    def utcoffset(self, dt: datetime | None) -> timedelta:
        if self.armed:
            raise RuntimeError("time bomb")
        return timedelta(hours=8)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "UTC+08"


def test_a_results_time_zone_is_not_plugin_code_the_host_runs_after_checking_it(
    make_app: Any, kit: Any
) -> None:
    """A checked offer or feed item kept the plugin's own ``tzinfo`` object, whose methods the host then
    ran while assembling every later page (validity windows, feed order): outside the plugin's deadline
    and breaker, so one raising there failed the whole page (500) for every customer, the plugin never
    charged. The checked copy holds plain values only."""
    zone = _TimeBomb()
    offer = kit.offer("home.banner", "bomb", valid_until=datetime(2099, 1, 1, tzinfo=zone))
    card = kit.item("wealth", "bomb", published=datetime(2026, 3, 1, tzinfo=zone))
    app = make_app(
        kit.plugin(
            "good",
            home_slot_offers=nonblocking(lambda ctx: [kit.offer("home.kingkong", "k")]),
            feed_items=nonblocking(lambda ctx, column: [kit.item(column, "g")]),
        ),
        kit.plugin(
            "bomb",
            home_slot_offers=nonblocking(lambda ctx: [offer]),
            feed_items=nonblocking(lambda ctx, column: [card]),
        ),
    )
    assert app.get("/v1/home").status_code == 200
    assert app.get("/v1/feeds/wealth").status_code == 200
    zone.armed = True  # a date passed, a call count reached: whatever the plugin chose
    other = app.token("synthetic-retiree")
    home = app.get("/v1/home", token=other)
    assert home.status_code == 200, home.text
    assert _keys(home.json(), "home.kingkong/v1") == [("good", "k")]
    feed = app.get("/v1/feeds/wealth", token=other)
    assert feed.status_code == 200, feed.text
    assert ("good", "g") in [(i["plugin"], i["key"]) for i in feed.json()["items"]]


class _Sprawling(list):  # type: ignore[type-arg]
    """A list that says it holds one item, whatever it holds."""

    def __len__(self) -> int:
        return 1


class _PassingForAList(_Sprawling):
    """A list subclass that says it is a ``list`` and holds one item, whatever it holds."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # type: ignore[override]
        return list


@pytest.mark.parametrize("kind", [_Sprawling, _PassingForAList], ids=["lies-about-len", "says-it-is-a-list"])
def test_a_list_that_lies_about_itself_is_still_held_to_fifty_items(
    make_app: Any, kit: Any, kind: type[list[Any]]
) -> None:
    """A list subclass whose ``len`` says 1 passed the 50-item cap and had all of its items checked
    and merged into the search results (``total`` counting them); so, later, did one whose
    ``__class__`` property says ``list``, taken for a list."""
    many = kind(kit.hit(f"h{i}") for i in range(2_000))
    app = make_app(
        kit.plugin("good", search=nonblocking(lambda ctx, query: [kit.hit("g")])),
        kit.plugin("lying", search=nonblocking(lambda ctx, query: many)),
    )
    body = app.get("/v1/search", params={"q": "x"}).json()
    assert _degraded(body) == {"lying": "invalid"}
    assert body["total"] == 1


class _GrowingZone(tzinfo):
    """A time zone whose offset, read while its offer is checked, appends to the list its plugin
    returned (once): as a thread of the plugin that goes on filling that list does, on cue."""

    def __init__(self, grows: list[Any], more: list[Any]) -> None:
        self.grows, self.more = grows, more

    def utcoffset(self, dt: datetime | None) -> timedelta:
        self.grows.extend(self.more)
        self.more = []
        return timedelta(hours=8)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)


def test_a_list_the_plugin_goes_on_filling_is_checked_as_it_was_returned(make_app: Any, kit: Any) -> None:
    """The check counts and walks a copy of the returned list: it followed a list that its plugin kept
    appending to, past the cap, holding the event loop for as long as the appending went on, and the
    late offers reached the page."""
    returned: list[Any] = []
    late = [kit.offer("home.banner", f"late{i}", priority=999) for i in range(2_000)]
    zone = _GrowingZone(returned, late)
    returned.append(kit.offer("home.banner", "first", valid_until=datetime(2099, 1, 1, tzinfo=zone)))
    app = make_app(kit.plugin("growing", home_slot_offers=nonblocking(lambda ctx: returned)))
    body = app.get("/v1/home").json()
    assert len(returned) == 2_001  # it did grow while being checked
    assert _degraded(body) == {}
    assert _keys(body, "home.banner/v1") == [("growing", "first")]


class _Bail(BaseException):
    """A plugin's own BaseException."""


class _Key(str):
    """A key whose hash raises a BaseException: the check hashes a result to look it up."""

    __slots__ = ()
    raises: type[BaseException] = _Bail

    def __hash__(self) -> int:
        raise self.raises("no hash for you")


class _InterruptingKey(_Key):
    __slots__ = ()
    raises = KeyboardInterrupt


@pytest.mark.parametrize("key", [_Key, _InterruptingKey], ids=["own-BaseException", "KeyboardInterrupt"])
def test_a_base_exception_raised_while_checking_a_result_is_only_its_plugins_error(
    make_app: Any, kit: Any, key: type[_Key]
) -> None:
    """A BaseException (not an Exception) raised by the plugin's objects while the host checks its
    result escaped the dispatcher and failed the whole search (500), every time: the plugin was never
    charged. Raised by the plugin's code itself it is that plugin's error; raised by its result's, too,
    a KeyboardInterrupt included (checked on the event loop's thread, which no real one reaches under
    the server)."""
    odd = msgspec.structs.replace(kit.hit("x"), key=key("odd"))
    app = make_app(
        kit.plugin("good", search=nonblocking(lambda ctx, query: [kit.hit("g")])),
        kit.plugin("odd", search=nonblocking(lambda ctx, query: [odd])),
    )
    response = app.get("/v1/search", params={"q": "x"})
    assert response.status_code == 200, response.text
    assert _degraded(response.json()) == {"odd": "invalid"}
    assert [i["key"] for i in response.json()["items"]] == ["g"]


def _home_calls(settings: Any, kit: Any, *plugins: object) -> list[Any]:
    from fulcrum_core.plugins import get_plugin_manager

    loaded = get_plugin_manager(settings, extra_plugins=plugins, load_entry_points=False)
    assert loaded.quarantined == {}
    return [(p, kit.context(p)) for p in loaded.loaded.values()]


@pytest.mark.anyio
async def test_keyboard_interrupt_raised_in_a_plugin_thread_is_its_error(settings: Any, kit: Any) -> None:
    """No signal is ever delivered to a worker thread, so a ``KeyboardInterrupt`` coming out of one is the
    plugin's own raise; it was raised on through the request (a 500 for every page, the plugin never
    charged)."""
    from fulcrum_core.dispatch.dispatcher import Dispatcher

    def interrupts(ctx: Any) -> Any:
        raise KeyboardInterrupt

    dispatcher = Dispatcher(settings)
    calls = _home_calls(settings, kit, kit.plugin("interrupts", home_slot_offers=interrupts))
    try:
        gathered = await dispatcher.call_many("home_slot_offers", calls)
    except KeyboardInterrupt:
        pytest.fail("a plugin thread's KeyboardInterrupt failed the whole request")
    finally:
        dispatcher.close()
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("interrupts", "error")]
    assert dispatcher.stats.snapshot()[0].error == 1


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_keyboard_interrupt_raised_in_a_plugins_task_does_not_stop_the_event_loop(
    settings: Any, kit: Any, loop: str
) -> None:
    """A coroutine raising ``KeyboardInterrupt`` after its first await raises it in its own task, and
    asyncio (uvloop too) re-raises that out of the event loop: the worker's loop stopped, taking every
    request in flight on it with it. The server (uvicorn) handles SIGINT itself, so no real interrupt
    arrives this way; it is the plugin's error, like its SystemExit."""
    from fulcrum_core.dispatch.dispatcher import Dispatcher

    async def interrupts(ctx: Any) -> Any:
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    calls = _home_calls(settings, kit, kit.plugin("interrupts", home_slot_offers=interrupts))

    async def page() -> Any:
        dispatcher = Dispatcher(settings)
        try:
            return await dispatcher.call_many("home_slot_offers", calls)
        finally:
            dispatcher.close()

    gathered = _on_its_own_loop(loop, page)
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("interrupts", "error")]


@pytest.mark.anyio
async def test_a_nonblocking_plugins_context_variables_reach_neither_the_next_plugin_nor_the_request(
    settings: Any, kit: Any
) -> None:
    """A ``@nonblocking`` plugin ran in the request's own context: a context variable it set (a tracing
    library's current span, a logging library's bound fields) stayed set for the plugins called after
    it, partners included, and for the rest of the request. Coroutines are kept apart already."""
    import contextvars

    from fulcrum_core.dispatch.dispatcher import Dispatcher

    var: contextvars.ContextVar[str] = contextvars.ContextVar("shared_library_state", default="")

    @nonblocking
    def sets(ctx: Any) -> Any:
        var.set(f"set by {ctx.plugin_id} for {ctx.customer.id}")
        return []

    @nonblocking
    def reads(ctx: Any) -> Any:
        return [kit.offer("home.banner", "leaked")] if var.get() else []

    dispatcher = Dispatcher(settings)
    first, second = kit.plugin("first", home_slot_offers=sets), kit.plugin("second", home_slot_offers=reads)
    calls = _home_calls(settings, kit, first, second)
    try:
        gathered = await dispatcher.call_many("home_slot_offers", calls)
    finally:
        dispatcher.close()
    assert gathered.results["second"] == []
    assert var.get() == ""


_HUNG_THREAD = """
import asyncio, threading
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.settings import Settings

async def main():
    dispatcher = Dispatcher(Settings())
    try:
        await asyncio.wait_for(dispatcher.in_plugin_thread(threading.Event().wait), 0.1)
    except TimeoutError:
        pass
    dispatcher.close()

asyncio.run(main())
"""


def test_a_worker_whose_plugin_thread_hangs_still_exits() -> None:
    """``Dispatcher.close`` does not wait for a hung plugin thread, but ``concurrent.futures`` joined every
    executor thread when the interpreter exited: a worker with one plugin call hung in a thread never
    exited after its server stopped (a restart or deploy waited for the kill). The pool's threads are
    daemons now."""
    exits(_HUNG_THREAD)


_SERVED_HUNG = """
import asyncio, sys, threading, time
import uvicorn
from fulcrum_core import app as host
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.settings import Settings

loop, path = sys.argv[1], sys.argv[2]
host.SHUTDOWN_THREADS_S = 2.0  # the test's wait: the hung thread is given it all
settings = Settings(state_dir=".")
runtime = build_runtime(settings, load_entry_points=False)
runtime.db.upgrade()
app = create_app(settings, runtime=runtime)
server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, loop=loop, log_level="critical"))

def late_work():
    time.sleep(1)
    print("late work finished", flush=True)

async def plugin_calls():
    if path == "to_thread":  # an async def plugin's blocking client, given up on at its deadline
        run = asyncio.to_thread
    else:  # a sync plugin in the dispatcher's threads
        run = runtime.dispatcher.in_plugin_thread
    for function in (threading.Event().wait, late_work):
        try:
            await asyncio.wait_for(run(function), 0.1)
        except TimeoutError:
            pass
    server.should_exit = True

async def start_plugin_calls():
    asyncio.get_running_loop().create_task(plugin_calls())

app.on_startup.append(start_plugin_calls)
server.run()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("loop", "path"), [("uvloop", "to_thread"), ("asyncio", "to_thread"), ("uvloop", "plugin_thread")]
)
def test_a_served_worker_whose_plugin_thread_hangs_exits_once_running_work_is_done(
    tmp_path: Any, loop: str, path: str
) -> None:
    """Served by uvicorn: an ``async def`` plugin's blocking client hung in ``asyncio.to_thread`` (the
    loop's default executor) kept the worker alive, as uvicorn's runner joins that executor without a
    bound when the loop closes, and ``concurrent.futures`` its threads at exit. The host makes the loop's
    default executor one of daemon threads and gives both pools a bounded time to finish when it stops:
    work still running then finishes (``late work``), the hung thread does not hold the process."""
    out = _served_output(tmp_path, _SERVED_HUNG, loop, path, waits_for="the plugin's hung thread")
    assert "late work finished" in out


def _served_output(cwd: Any, script: str, *args: str, waits_for: str, path: str | None = None) -> str:
    """What the served worker ``script`` (run with ``args``, and ``path`` first on ``PYTHONPATH``) printed,
    once it exited on its own with status 0 within 120 s; the test fails saying what it ``waits_for``.

    What it waits for, when not bounded, is forever: the bound is a loaded machine's start (imports, the
    migration, uvicorn), which took the child past 30 s with another test run on the two cores."""
    import os
    import subprocess
    import sys

    env = None if path is None else {**os.environ, "PYTHONPATH": path}
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args], cwd=cwd, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        out, _ = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the served worker did not exit: it waits for {waits_for}")
    finally:
        child.kill()
        child.wait()
        assert child.stdout is not None
        child.stdout.close()  # else its pipe, unread after a timeout, is an unraisable ResourceWarning later
    assert child.returncode == 0
    return out


_SERVED_STUBBORN = """
import asyncio, contextlib, sys
import uvicorn
from fulcrum_core import app as host
from fulcrum_core.app import build_runtime, create_app
from fulcrum_core.settings import Settings
from tests.core.conftest import PluginKit

host.SHUTDOWN_THREADS_S = 1.0

async def stubborn():
    while True:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)

async def hangs(ctx, query):
    await stubborn()

async def leaves(ctx, query):
    asyncio.create_task(stubborn())
    return []

kit = PluginKit()
plugins = [kit.plugin("hangs", search=hangs), kit.plugin("leaves", search=leaves)]
settings = Settings(state_dir=".")
runtime = build_runtime(settings, load_entry_points=False, extra_plugins=plugins)
runtime.db.upgrade()
app = create_app(settings, runtime=runtime)
server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, loop=sys.argv[1], log_level="critical"))

async def plugin_calls():
    loaded = list(runtime.plugins.loaded.values())
    await runtime.dispatcher.call_many("search", [(p, kit.context(p)) for p in loaded], query="q")
    await asyncio.sleep(0.5)  # past the deadline of the task left behind: cancelled, and ignoring it
    server.should_exit = True

async def start_plugin_calls():
    asyncio.get_running_loop().create_task(plugin_calls())

app.on_startup.append(start_plugin_calls)
server.run()
print("exited", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_served_worker_whose_plugin_task_ignores_its_cancellation_exits(tmp_path: Any, loop: str) -> None:
    """Served by uvicorn: a plugin's coroutine that catches its cancellation and goes on waiting (its
    call's own task, or a task it left behind) kept the worker from exiting once its server stopped, as
    the loop's runner waits, without a bound, for every task it cancels as it closes (a restart or deploy
    waited for the kill). The host gives them the threads' bounded time and then stops waiting."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = _served_output(tmp_path, _SERVED_STUBBORN, loop, waits_for="the plugin's task", path=root)
    assert "exited" in out


class _Page:
    """What the campaign store asks of a page (no branch layer)."""

    now = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    settings_token = None

    def settings_of(self, plugin: Any) -> Any:
        return plugin.settings

    def settings_variants_of(self, plugin: Any) -> list[Any]:
        return [plugin.settings]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_keyboard_interrupt_from_a_campaign_call_does_not_stop_the_event_loop(
    settings: Any, kit: Any, loop: str
) -> None:
    """A campaign call runs in a task of the campaign store's own, not in the page's: a
    ``KeyboardInterrupt`` a plugin raises inline there, which the dispatcher raises on as from the
    event loop's thread, ended that task and asyncio re-raised it out of the loop, stopping the worker.
    The page lists the plugin as ``error`` instead."""
    from fulcrum_core.campaigns import CampaignStore, collect
    from fulcrum_core.dispatch.dispatcher import Dispatcher
    from fulcrum_core.plugins import get_plugin_manager

    @nonblocking
    def interrupts(ctx: Any) -> Any:
        raise KeyboardInterrupt

    loaded = get_plugin_manager(
        settings,
        extra_plugins=[kit.plugin("interrupts", home_slot_campaigns=interrupts)],
        load_entry_points=False,
    )
    plugins = list(loaded.loaded.values())

    async def page() -> Any:
        dispatcher = Dispatcher(settings)
        try:
            offers, waiting = CampaignStore(dispatcher, 60_000).for_page(plugins, _Page())
            return await collect(waiting, offers, asyncio.get_running_loop().time() + 5)
        finally:
            dispatcher.close()

    degraded = _on_its_own_loop(loop, page)
    assert [(d.plugin, d.reason) for d in degraded] == [("interrupts", "error")]


def test_what_a_plugin_writes_into_its_settings_never_reaches_the_next_customer(
    make_app: Any, kit: Any
) -> None:
    """``ctx.settings`` was the plugin's host-level settings dict itself, shared by every request: a
    plugin "caching" something there (a customer id, a token) handed it to every later customer's
    call. It is read-only now (a write raises ``TypeError``: the plugin's error, found in its own
    tests, whose harness gives the same read-only mapping)."""
    seen: list[dict[str, str]] = []

    @nonblocking
    def remembers(ctx: Any) -> Any:
        seen.append(dict(ctx.settings))
        ctx.settings["last_customer"] = ctx.customer.id
        return []

    app = make_app(kit.plugin("remembers", home_slot_offers=remembers))
    first = app.get("/v1/home").json()
    app.get("/v1/home", token=app.token("synthetic-retiree"))
    assert seen == [{}, {}]
    assert _degraded(first) == {"remembers": "error"}


def test_a_transaction_result_is_bounded_like_every_other_result(make_app: Any, kit: Any) -> None:
    """Every result type has bounds except ``TransactionResult.data``: a plugin putting a whole upstream
    answer there (200,000 entries, 22 MB) had it checked on the event loop (about 0.13 s, every worker's
    request waiting), journaled and sent back whole, on every transaction. Past the bounds the result is
    invalid: the transaction is ``unknown`` (the plugin may have acted), for reconciliation."""

    def execute(ctx: Any, request: TransactionRequest) -> TransactionResult:
        return TransactionResult(status="succeeded", data={str(i): "x" * 100 for i in range(200_000)})

    app = make_app(_payer(kit, execute))
    response = _post(app)
    assert len(response.content) < 10_000, f"{len(response.content)} bytes"
    assert response.status_code == 202, response.text[:300]
    assert response.json()["status"] == "unknown"


class _Refusing(msgspec.Struct, frozen=True):
    amount_fen: int

    def __post_init__(self) -> None:
        raise TransactionRefused("x.refused", LocalizedText(zh_CN="坏\ud800"))


def test_a_refusal_that_cannot_be_sent_is_the_plugins_fault_not_a_500(make_app: Any, kit: Any) -> None:
    """A plugin refusing (``TransactionRefused``) with text that cannot be sent: checking the request's
    parameters, that was a 500 ("unable to serialize response content"), and from
    ``execute_transaction``, with a ``field`` that cannot be sent, the journal's write of the answer
    raised, a 500 again, and the row was left ``pending`` although the plugin had answered. A refusal is
    checked like a result now: before journaling the plugin's fault (502), after it ``unknown`` (202)."""

    def register_refusing(register: Callable[[TransactionType], None]) -> None:
        register(TransactionType(key="x.pay", name=LocalizedText(zh_CN="付款"), params=_Refusing,
                                 risk_level="R1", amount_field="amount_fen"))

    app = make_app(
        kit.plugin(
            "payer",
            transaction_types=["x.pay"],
            register_transaction_types=register_refusing,
            execute_transaction=_succeeds,
        )
    )
    response = _post(app)
    assert response.status_code == 502, response.text
    assert response.json()["code"] == "transaction.plugin_error"

    def refuses(ctx: Any, request: TransactionRequest) -> Any:
        raise TransactionRefused("x.refused", LocalizedText(zh_CN="不行"), field="amount\ud800")

    app = make_app(_payer(kit, refuses))
    _post_left_unknown(app)


QUICK = BreakerConfig(sliding_window_size=4, minimum_number_of_calls=4)


def test_a_plugin_that_keeps_answering_outcome_unknown_has_its_breaker_opened(
    make_app: Any, kit: Any
) -> None:
    """Each ``OutcomeUnknown`` is journaled ``unknown`` (202) and counted by the plugin's breaker: a
    partner system that keeps timing out after taking orders then has the next ones refused at once
    (503, retry later, the plugin never asked), instead of every order waiting out the call and adding
    one more transaction to reconcile. Before, the breaker never counted them."""
    asked: list[str] = []

    def execute(ctx: Any, request: TransactionRequest) -> TransactionResult:
        asked.append(request.id)
        raise OutcomeUnknown("the partner took the order but its answer timed out")

    app = make_app(_tx_plugin(kit, execute), breaker=QUICK)
    statuses = [_post(app, key=f"k-{i}").status_code for i in range(6)]
    assert statuses == [202, 202, 202, 202, 503, 503]
    assert len(asked) == 4
    assert app.runtime.dispatcher.breaker_open("payer", "execute_transaction")


def test_data_unavailable_a_plugin_raises_itself_counts_against_it(make_app: Any, kit: Any) -> None:
    """``DataUnavailable`` spares the breaker only when the host's own read raised it (the consents or a
    record it could not read: ``test_api_pages.py``): a plugin that raised it itself, after waiting on
    its own backend, was never charged, so every page waited on it for good."""

    async def own(ctx: Any) -> list[Any]:
        raise DataUnavailable("our own offers")

    app = make_app(
        kit.plugin("good", home_slot_offers=nonblocking(lambda ctx: [kit.offer("home.banner", "g")])),
        kit.plugin("own", home_slot_offers=own),
        breaker=QUICK,
    )
    reasons = [_degraded(app.get("/v1/home").json()).get("own") for _ in range(5)]
    assert reasons == ["error", "error", "error", "error", "rejected"]
    assert app.runtime.dispatcher.breaker_open("own", "home_slot_offers")


def _leaves_a_task_raising(kind: type[BaseException], path: str) -> Callable[..., Any]:
    """A ``home_slot_offers`` impl returning at once, leaving a task that raises ``kind`` a moment later;
    the task is started from its first step, after an await, or from a ``@nonblocking`` function."""

    async def raises() -> None:
        await asyncio.sleep(0.01)
        raise kind()

    async def first_step(ctx: Any) -> Any:
        asyncio.create_task(raises())  # noqa: RUF006 - left behind on purpose
        return [_OFFER]

    async def after_waiting(ctx: Any) -> Any:
        await asyncio.sleep(0)
        asyncio.ensure_future(raises())  # noqa: RUF006
        return [_OFFER]

    @nonblocking
    def inline(ctx: Any) -> Any:
        asyncio.get_running_loop().create_task(raises())
        return [_OFFER]

    return {"first-step": first_step, "after-waiting": after_waiting, "inline": inline}[path]


_OFFER = SlotOffer(slot="home.banner/v1", key="b1", title=LocalizedText(zh_CN="横幅"),
                   action=Action(uri="fulcrum://open/b1"))


@pytest.mark.parametrize("kind", [SystemExit, KeyboardInterrupt])
@pytest.mark.parametrize("path", ["first-step", "after-waiting", "inline"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_task_a_plugin_leaves_raising_system_exit_does_not_stop_the_event_loop(
    settings: Any, kit: Any, loop: str, path: str, kind: type[BaseException]
) -> None:
    """A task a plugin started and left behind raising ``SystemExit`` or ``KeyboardInterrupt``: asyncio
    (uvloop too) re-raises either out of the event loop, which stopped the worker with every request in
    flight on it, long after the plugin's own call had answered ``ok``. It is the plugin's leftover
    ``error`` now (logged and counted naming it and what it raised), as one raising anything else is."""
    from fulcrum_core.dispatch.dispatcher import Dispatcher
    from fulcrum_core.observability.metrics import Metrics

    leaver = kit.plugin("leaver", home_slot_offers=_leaves_a_task_raising(kind, path))
    calls = _home_calls(settings, kit, leaver)
    metrics = Metrics()
    reported: list[str] = []

    async def page() -> Any:
        dispatcher = Dispatcher(settings, observer=metrics)
        dispatcher.leftover = lambda *args: reported.append(args[-1])  # type: ignore[method-assign]
        try:
            gathered = await dispatcher.call_many("home_slot_offers", calls)
            for _ in range(500):  # the leftover is judged at the call's deadline (150 ms)
                await asyncio.sleep(0.01)
                if reported:
                    break
            return gathered
        finally:
            dispatcher.close()

    gathered = _on_its_own_loop(loop, page)
    assert gathered.degraded == []
    assert list(gathered.results) == ["leaver"]
    assert reported == [f"raised {kind.__name__}: "]
