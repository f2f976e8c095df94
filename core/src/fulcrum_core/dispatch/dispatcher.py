"""The dispatcher: calls each plugin's hookimpl on its own, under a deadline, and validates the result.

pluggy's multicall stops at the first exception and knows no deadline, so the host never uses it on
a request path. Each plugin × hook has a circuit breaker and a bulkhead (``resilience.py``); a call
they refuse is ``rejected`` at once. An admitted call starts the cheapest way that still keeps the
page safe (the fast path, measured in ``bench/``):

- an ``async def`` impl is started eagerly (``eager.py``): its coroutine runs inline until it first
  suspends, as the task that goes on with it if it does (so a timeout it starts cancels it, not the
  request); one that returns without waiting costs a function call, and only one that actually
  waits becomes a task under the deadline;
- a plain impl declared :func:`fulcrum_sdk.nonblocking` is called inline; if it overruns the
  deadline its result is dropped and the breaker is told of a timeout, so it is soon skipped;
- any other plain impl runs in a worker thread; its bulkhead place is held until the thread ends,
  so a hanging plugin can tie up at most ``bulkhead_size`` threads. Its duration, as the breaker
  sees it, starts when a thread picks it up; a call still queued at the deadline is withdrawn (it
  never runs) and left out of the page but not held against the plugin (the host's congestion is not
  the plugin's fault); ``call_one`` raises it as ``rejected``: the plugin was never asked.

One ``asyncio.wait`` with what is left of the deadline collects the calls that suspended. A plugin
that raises, misses the deadline or returns the wrong shape loses its contribution and is listed in
``Gathered.degraded``; the others are unaffected. Checking a result runs on the loop and counts as
part of the call: a result cheap to return but slow to check makes a slow (or, inline, late) call.
Nothing waits on a late plugin: a late task is cancelled and a late thread abandoned.
:class:`CallGuard` objects (extra policies) are asked after the breaker and bulkhead, and a
:class:`CallObserver` (metrics) is told every outcome.

Tasks a plugin starts and leaves running outlive its call, so the call charges them (``leftovers.py``):
around code of a plugin's that runs inline the dispatcher tells the loop's task factory whose it is
(two attribute writes), and a call that suspends or runs in a thread carries it in its context. What
is still running at the call's deadline (its start plus the hook's own deadline) is cancelled; it and
any that raised unretrieved are logged and counted (:meth:`Dispatcher.leftover`), not recorded in the
breaker, which is told once per call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import inspect
import logging
import math
import sys
import time
import types
from collections.abc import Callable, Sequence
from contextvars import copy_context
from typing import Any, Literal, NoReturn, Protocol, TypeVar

from fulcrum_sdk._validate import (
    LIST_RESULT_TYPES,
    ResultError,
    Seen,
    check_list,
    check_page,
    check_transaction_result,
)
from fulcrum_sdk.context import AudienceContext, PluginContext
from fulcrum_sdk.errors import NO_CONSENT, OutcomeUnknown, ScopeDenied, TransactionRefused, _raised_by_host

from fulcrum_core.dispatch.breaker import BreakerState
from fulcrum_core.dispatch.clock import MONOTONIC, Clock, wait_until
from fulcrum_core.dispatch.daemon_threads import DaemonThreadPool, joined
from fulcrum_core.dispatch.eager import Eager, PluginExit
from fulcrum_core.dispatch.leftovers import OWNER, LeftoverOutcome, TaskWatch, given_up, install
from fulcrum_core.dispatch.resilience import Guard, Guards
from fulcrum_core.dispatch.results import Degraded, DegradedReason, Gathered, Outcome, PluginCallError
from fulcrum_core.dispatch.stats import CallStats
from fulcrum_core.plugins import HookCall, LoadedPlugin
from fulcrum_core.settings import TIMED_AS, Settings

__all__ = [
    "CallGuard",
    "CallObserver",
    "Degraded",
    "Dispatcher",
    "Gathered",
    "PluginCallError",
    "partner_request_id_of",
]

log = logging.getLogger("fulcrum.dispatch")

_DETAIL_MAX = 300
_BREAKER_OPEN = "circuit breaker open"
_CTX_ONLY = ("ctx",)
_CHECKED = "with checking its result took"
_LATE_LOOP = 0.25
"""A wait that ends this share of its deadline late means the event loop was held, not free for calls."""
_T = TypeVar("_T")
HookContext = PluginContext | AudienceContext
"""What a hook receives: a customer's context, or (``home_slot_campaigns``) an audience's."""
_Source = tuple[LoadedPlugin, HookContext | None] | None
"""The plugin a failure is about and the context it was given (``None``: not known here)."""


def partner_request_id_of(plugin: LoadedPlugin, ctx: HookContext | None) -> str:
    """The request id partner ``plugin`` was given in ``ctx`` (its own HMAC of the host's id, so the
    platform team can match a partner's report to the host's logs); empty for any other plugin."""
    return ctx.request_id if ctx is not None and plugin.kind == "partner" else ""


class CallGuard(Protocol):
    """Consulted around every plugin call, after the breaker and bulkhead (extra policies)."""

    def admit(self, plugin: str, hook: str) -> str | None:
        """``None`` to let the call run, or the reason it is refused."""
        ...

    def record(self, plugin: str, hook: str, outcome: Outcome, seconds: float) -> None:
        """Told exactly once per ``admit`` asked of this guard how the call ended and how long it took;
        ``rejected`` when this or a later guard refused it, or when the caller gave up on it before it
        ended (so a bulkhead can give its place back)."""
        ...


class CallObserver(Protocol):
    """Told how every call ended (metrics): ``outcome`` is an :data:`Outcome` or ``breaker_open``."""

    def observe(self, plugin: str, hook: str, outcome: str, seconds: float) -> None:
        """Count one call; ``seconds`` is 0 for a call that never ran."""
        ...


class _Call:
    """One plugin call that suspended: its future, its guard, and when it started and ended."""

    __slots__ = ("began", "ctx", "ended", "future", "guard", "inner", "plugin", "started", "ticket")

    def __init__(
        self,
        plugin: LoadedPlugin,
        guard: Guard,
        future: asyncio.Future[Any],
        started: float,
        ctx: HookContext | None = None,
    ) -> None:
        self.plugin = plugin
        self.ctx = ctx  # what the plugin was given: its failure is logged with a partner's request id
        self.guard = guard
        self.future = future
        self.started = started
        self.ended = 0.0
        # Thread calls only: [when the worker thread began running it], 0.0 while still queued.
        self.began: list[float] | None = None
        # Thread calls only: the executor's future, which can tell "withdrawn before it ran" for sure.
        self.inner: concurrent.futures.Future[Any] | None = None
        # Thread calls only: its place in the plugin's count of threads left running past a deadline.
        self.ticket: _ThreadTicket | None = None
        future.add_done_callback(self._stamp)

    def _stamp(self, future: asyncio.Future[Any]) -> None:
        self.ended = _now(future.get_loop())


def _consume(future: asyncio.Future[Any]) -> None:
    # A late task may still fail after we gave up on it; retrieve the error so nobody logs it as lost.
    if not future.cancelled():
        future.exception()


def _abandon(calls: list[_Call], hook: str, extras: list[CallGuard]) -> None:
    """The caller was cancelled while it waited for ``calls``: cancel them (a task gets CancelledError, a
    queued thread call never starts, a running thread keeps its place until it ends) and give back
    their breaker permissions (a half-open probe), recording nothing: no outcome was seen. The extra
    guards that admitted them are told ``rejected``, as they are told of every call once."""
    for call in calls:
        if call.inner is None:
            _given_up(call.guard, call.future)  # a thread call is counted by its ticket
        call.future.cancel()
        call.future.add_done_callback(_consume)
        call.guard.breaker.release()
        if extras:
            seconds = _now(call.future.get_loop()) - call.started
            for extra in extras:
                extra.record(call.plugin.id, hook, "rejected", seconds)


def _given_up(guard: Guard, task: asyncio.Future[Any]) -> None:
    """Count ``task``, given up on while it runs, among ``guard``'s stuck calls until it ends."""
    if not task.done():
        guard.stuck += 1
        task.add_done_callback(lambda _: _unstuck(guard))
        if isinstance(task, asyncio.Task):
            given_up(task)  # one that ignores the cancellation must not hold the worker as it stops


def _unstuck(guard: Guard) -> None:
    guard.stuck -= 1


def _text(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when the plugin's exception cannot even say what it is."""
    try:
        return str(exc)
    except BaseException:  # even a KeyboardInterrupt from its __str__ (see PluginExit): still only a message
        return "(its message could not be read)"


def _named(thing: object) -> str:
    """What ``thing`` is, by a function's or its type's name, for a log line. The names are plugin data
    (a function's ``__module__`` may be any object, a metaclass may compute them): only plain strings
    are used, and nothing it raises gets out."""
    try:
        if thing is None:
            return "none"
        named = thing if type(thing) is types.FunctionType else type(thing)
        module, name = named.__module__, named.__qualname__
        if type(module) is str and type(name) is str:
            return f"{module}.{name}"[:200]
    except BaseException:  # noqa: S110 - its own code broke while being read: say less
        pass
    return "an object"


def _describe(exc: BaseException) -> str:
    if type(exc) is PluginExit:  # a SystemExit (or the like) the plugin's task raised: say which
        exc = exc.raised
    text = f"{type(exc).__name__}: {_text(exc)}"
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


_Meaning = Literal["refused", "unknown", "consent", "unavailable", "error"]


def _meaning(exc: BaseException, hook: str, asks_consent: frozenset[str]) -> tuple[_Meaning, str]:
    """What a plugin's exception means to the host: a transaction's refusal or unknown outcome, a page's
    want of consent to one of ``asks_consent`` (with that scope, as read: the caller is handed a
    ``ScopeDenied`` of the host's, since the plugin's ``scope`` property may answer differently, or
    raise, when read again), the bank's data being late, or the plugin's error.

    Telling runs the plugin's code (a ``__class__`` property, an attribute's ``__eq__`` or ``__hash__``),
    which may raise anything: the plugin's error then, never an exception out of the dispatcher (it took
    the whole page, every other plugin's contribution with it, to a 500). A ``ScopeDenied`` means the
    customer's consent only when its scope and reason are plain text, as the host's own are."""
    try:
        if hook == "execute_transaction" and isinstance(exc, TransactionRefused):
            return "refused", ""
        if hook == "execute_transaction" and isinstance(exc, OutcomeUnknown):
            return "unknown", ""
        if isinstance(exc, ScopeDenied):
            reason, scope = exc.reason, exc.scope
            if type(reason) is str and type(scope) is str and reason == NO_CONSENT and scope in asks_consent:
                return "consent", scope
        if _raised_by_host(exc):  # the host's read, not the plugin's own
            return "unavailable", ""
    except BaseException:  # noqa: S110 - its own code broke while being read: only its error
        pass
    return "error", ""


def _overran(elapsed: float, limit_s: float, what: str = "ran") -> str:
    """Why a call that held the event loop past its deadline was dropped."""
    return (
        f"{what} {elapsed * 1000:.0f} ms inline, over the {limit_s * 1000:.0f} ms deadline; "
        "its result was dropped"
    )


def _held_loop(guard: Guard, elapsed: float, limit_s: float) -> bool:
    """True when a call held the event loop ``elapsed`` seconds, ``open_on_loop_hold`` times its deadline
    or more: every request on the worker waited for it, so its breaker opens at once."""
    factor = guard.breaker.config.open_on_loop_hold
    return factor > 0 and elapsed > limit_s and elapsed >= factor * limit_s


def _held(guard: Guard, elapsed: float, limit_s: float) -> str:
    """What to add to the detail of a call that overran inline (see :func:`_held_loop`)."""
    if _held_loop(guard, elapsed, limit_s):
        factor = guard.breaker.config.open_on_loop_hold
        return f"; it held the event loop {factor:g}x its deadline or more, so its breaker opens"
    return ""


def _ran_its_deadline(call: _Call, woke: float, limit_s: float) -> bool:
    """True for a thread call that, when the wait ended at ``woke``, had been running in its worker
    thread for ``limit_s`` or more: however late the event loop came back, the call had its time."""
    began = call.began[0] if call.began is not None else 0.0
    return began > 0.0 and woke - began >= limit_s


_SPENT = "the calls before it held the event loop through the page's whole budget; not started"


def _let_go(guard: Guard, held: float, limit_s: float) -> None:
    """An inline call's own objects (its result as returned, its exception) were let go of, which runs
    their finalizers (``__del__``, a generator's ``finally``) on the loop, and that took ``held``.

    The dispatcher lets go of them before the next plugin's clock starts: held until the next call
    replaced them, their finalizers ran inside that call's timing, and a plugin blocking in one left the
    next plugin out of the page as a timeout, charged to its breaker. The call that handed them over is
    recorded by then; if letting go held the loop ``open_on_loop_hold`` deadlines, its breaker opens."""
    _open_if_held(guard, held, limit_s)


def _open_if_held(guard: Guard, elapsed: float, limit_s: float) -> None:
    """Open ``guard``'s breaker if the call held the loop that long (:func:`_held_loop`), however it
    ended or goes on; called once the call is recorded, so its window keeps it."""
    if _held_loop(guard, elapsed, limit_s):
        guard.breaker.trip()


def _reopen_if_probe_held(guard: Guard, elapsed: float, limit_s: float) -> None:
    """Before a half-open probe is recorded: open its breaker now if the probe held the loop that long
    (:func:`_held_loop`). Recorded first, the last probe could close the breaker for an instant (the
    probes' rates passing) before :func:`_open_if_held` opened it again, and metrics and the other
    workers would see a closing that never held. A CLOSED breaker is opened after the record, so its
    window keeps the call that opened it."""
    if guard.breaker.state is _PROBING and _held_loop(guard, elapsed, limit_s):
        guard.breaker.trip()


_PROBING = BreakerState.HALF_OPEN


def _clock_of(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time``, or ``time.monotonic`` itself when that is what it reads: asyncio's own loops (the
    same readings without a Python call around each, three times per plugin call) and uvloop's, whose
    ``time()`` is the same monotonic clock cut to the millisecond (too coarse for call latencies)."""
    clock = getattr(loop.time, "__func__", None)
    if clock is asyncio.BaseEventLoop.time:
        return time.monotonic
    uvloop = sys.modules.get("uvloop")
    if uvloop is not None and type(loop).time is uvloop.Loop.time:
        return time.monotonic
    return loop.time


def _now(loop: asyncio.AbstractEventLoop) -> float:
    """The time on ``loop``'s clock (see :func:`_clock_of`), for the calls off the fast path."""
    return _clock_of(loop)()


def _validate(hook: str, value: Any, seen: Seen) -> Any:
    if value.__class__ is not list and inspect.isawaitable(value):  # a list is the common case
        if inspect.iscoroutine(value):
            value.close()
        raise ResultError(f"{hook} returned an awaitable from a plain function; declare it `async def`")
    if hook in LIST_RESULT_TYPES:
        return check_list(hook, value, seen=seen)
    if hook == "execute_transaction":
        return check_transaction_result(value, seen=seen)
    if hook == "page":
        return check_page(value, seen=seen)
    return value


class Dispatcher:
    """Calls plugins one by one, concurrently, each under the hook's deadline from settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        stats: CallStats | None = None,
        guards: Sequence[CallGuard] = (),
        observer: CallObserver | None = None,
        clock: Clock = MONOTONIC,
        max_threads: int = 64,
        threads_per_plugin: int | None = None,
    ) -> None:
        self.settings = settings
        self.stats = stats if stats is not None else CallStats()
        self.guards: list[CallGuard] = list(guards)
        self.observer = observer
        self.on_plugin_error: Callable[[str, str, BaseException], None] | None = None
        """Given each exception a plugin's call raised (the dev host prints its traceback); None in
        production, where the log line and the stats keep only its type and text."""
        self.resilience = Guards(
            settings.breaker,
            lambda hook: self.deadline_ms(hook) / 1000,
            settings.bulkhead_size,
            slow_call_s=lambda hook: settings.slow_call_ms(hook) / 1000,
            clock=clock,
        )
        # Daemon threads: one hung in a plugin does not keep the process alive once the host has stopped.
        # Threads hung in plugins are lent (``_ThreadShare``): as many more may start, up to four times
        # ``max_threads``, so that hung plugins do not queue every other plugin's calls behind them.
        self._executor = DaemonThreadPool(max_threads, "fulcrum-plugin", ceiling=4 * max_threads)
        # A plugin whose sync calls, across all its hooks, left this many threads running past their
        # deadline gets no more until they return: a thread cannot be stopped, so a few plugins hung in
        # several hooks each would otherwise hold every thread. Healthy concurrency is the bulkhead's.
        self._threads = _ThreadShare(threads_per_plugin or max(1, max_threads // 4), self._executor)
        # The task factory of the loop last called on (``leftovers.py``), installed there if missing.
        self._watch_loop: asyncio.AbstractEventLoop | None = None
        self._watch: TaskWatch | None = None
        # The result objects each plugin returned that its checks remember (see _objects_of).
        self._seen: dict[str, Seen] = {}

    def _watch_on(self, loop: asyncio.AbstractEventLoop) -> TaskWatch:
        """The :class:`TaskWatch` of ``loop``, which tags the tasks plugins start there (installed
        now if the app's startup did not, e.g. a dispatcher used on its own)."""
        watch = self._watch
        if loop is not self._watch_loop or watch is None:
            watch = self._watch = install(loop)
            self._watch_loop = loop
        return watch

    def _rewatch(self, loop: asyncio.AbstractEventLoop, after: str = "") -> None:
        """Put the watch back as ``loop``'s task factory if code replaced it: a plugin that called
        ``loop.set_task_factory`` (an instrumentation library does) left the tasks every plugin started
        afterwards untagged, never bounded by their calls' deadlines. Checked when a dispatch starts, after
        each call that ran on the loop and when a dispatch ends; logged with what was found there and
        ``after`` (the call it was found after: a worker thread of another plugin may have done it
        meanwhile, so nobody is charged). The watch goes on around the factory it was installed over."""
        watch = self._watch
        if watch is None or loop is not self._watch_loop:
            return
        found = loop.get_task_factory()
        if found is not watch:
            loop.set_task_factory(watch)
            log.warning(
                "the event loop's task factory was replaced by plugin code (found %s%s); the host's was put "
                "back, so the tasks plugins start stay bounded by their calls' deadlines",
                _named(found), f", after {after}" if after else "",
            )

    def leftover(self, plugin: str, hook: str, outcome: LeftoverOutcome, detail: str) -> None:
        """A task a call of ``plugin``'s ``hook`` started was still running at the call's deadline
        (``cancelled``) or raised with nobody retrieving it (``error``): logged and counted."""
        log.warning(
            "plugin %r left a task behind in %s (%s): %s", plugin, hook, outcome, detail,
            extra={"plugin": plugin, "hook": hook},
        )
        observe = getattr(self.observer, "observe_leftover", None)
        if observe is not None:
            observe(plugin, hook, outcome)

    def _objects_of(self, plugin: str) -> Seen:
        """The result objects ``plugin`` returned that the checks remember, its own: they may hold the
        plugin's code (a ``__del__``), which runs when the memo lets go of them, so only a check of
        that plugin's results ever does (in one memo for all, another plugin's check paid for it)."""
        seen = self._seen.get(plugin)
        if seen is None:
            seen = self._seen[plugin] = {}
        return seen

    def deadline_ms(self, hook: str) -> int:
        """The configured deadline of ``hook`` in milliseconds (campaigns: the home page's)."""
        value: int = getattr(self.settings.deadlines, TIMED_AS.get(hook, hook))
        return value

    def close(self) -> None:
        """Stop accepting thread work; threads still running a late plugin are not waited for."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def threads_ended(self, timeout_s: float) -> bool:
        """After :meth:`close`: wait at most ``timeout_s`` for the plugin threads still running to end (a
        stopping host lets them finish); True if they all did. Those still running then are daemons, left
        to end with the process instead of keeping it alive."""
        return await joined(self._executor, timeout_s)

    # --- public calls ------------------------------------------------------------------------------

    async def call_many(
        self,
        hook: str,
        calls: Sequence[tuple[LoadedPlugin, HookContext]],
        *,
        deadline_ms: float | None = None,
        **kwargs: Any,
    ) -> Gathered:
        """Call ``hook`` on every plugin in ``calls`` with its own context; never raises for a plugin.

        ``deadline_ms`` shortens the wait (never lengthens it), for a caller with an overall budget.
        Plugins are still judged by the hook's own deadline: an inline call is late only past it, and
        a call cut short by the caller's budget is left out without counting against its breaker; a
        plugin whose turn comes once inline calls before it have spent that budget is not started
        (``rejected``, not charged). So
        is one still waiting when the event loop was held past the deadline (an ``async def`` calling
        ``time.sleep``, inline or in its task): the one that held it is charged, not the plugins it
        starved.
        """
        gathered = Gathered()
        hook_s = limit_s = self.deadline_ms(hook) / 1000
        if deadline_ms is not None:
            limit_s = max(0.0, min(hook_s, deadline_ms / 1000))
        blame = limit_s >= hook_s
        loop = asyncio.get_running_loop()
        now = _clock_of(loop)
        started = now()
        suspended: list[_Call] = []
        results, degraded = gathered.results, gathered.degraded
        # Calls that finished inline, in time and valid: the common case, recorded in one batch below.
        fine: list[tuple[str, float]] = []
        guard_of = self.resilience.get
        made = self.resilience.of_hook(hook).get
        extras = self.guards
        checks_list = hook in LIST_RESULT_TYPES
        seen_by = self._seen.get
        eager = Eager(loop)
        self._rewatch(loop)
        watch = self._watch_on(loop)  # told which call's code runs inline, to tag the tasks it starts
        watch.sink, watch.limit_s = self, hook_s
        factory_now = loop.get_task_factory
        # What the last inline call handed over as it was (its result, its exception): let go of before
        # the next plugin's clock starts (see _let_go).
        value: Any = None
        exc: BaseException | None = None
        failed: BaseException | None = None  # what a check of its result on the fast path raised
        # The caller's budget: a plugin whose turn comes after the calls before it spent it is not
        # started (see below). One already spent when the caller asks still has every plugin asked
        # (the ones that suspend are cut at once): a page late before its plugins ran gains little by
        # leaving out the quick ones that finish inline.
        budget_end = started + deadline_ms / 1000 if deadline_ms is not None and deadline_ms > 0 else math.inf
        spent = False
        call: _Call | tuple[Any, BaseException | None, float] | None = None
        last: Guard | None = None
        for plugin, ctx in calls:
            if last is not None:
                released = now()
                value = exc = call = failed = None
                if now() - released > hook_s:  # only then can it have held the loop too long
                    _let_go(last, now() - released, hook_s)
                last = None
                spent = released >= budget_end
            impl = plugin.impls.get(hook)
            if impl is None:
                continue
            pid = plugin.id
            if spent:
                # The calls before it held the loop through the caller's whole budget (each within its
                # own deadline): starting it would only make the answer later still. Left out unasked,
                # like a bulkhead's refusal, and not charged: the plugins that held the loop were.
                self._spent(pid, hook)
                degraded.append(Degraded(plugin=pid, hook=hook, reason="rejected", detail=_SPENT))
                continue
            guard = last = made(pid) or guard_of(pid, hook)
            if extras or not (impl.is_async or impl.inline) or not guard.free():
                # The general path: a breaker to ask, a bulkhead place to hold, a thread, extra guards.
                refused = self._admit(pid, hook, guard, threaded=not (impl.is_async or impl.inline))
                if refused is not None:
                    degraded.append(Degraded(plugin=pid, hook=hook, reason="rejected", detail=refused))
                    continue
                call = self._start(loop, eager, plugin, guard, impl, ctx, kwargs, hook_s)
                if call.__class__ is _Call:
                    suspended.append(call)
                    continue
                value, exc, t0 = call  # type: ignore[misc]
            else:
                # The fast path: a closed breaker admits without bookkeeping, and a call that ends
                # inline never overlaps another, so only one that suspends takes a bulkhead place.
                args = (ctx,) if impl.argnames == _CTX_ONLY else _args(impl.argnames, ctx, kwargs)
                t0 = now()
                exc = None
                watch.guard, watch.since = guard, t0  # the plugin's code runs inline from here
                if impl.is_async:
                    try:
                        coro = impl.function(*args)
                        ended, value = eager.first_step(coro)
                    except StopIteration as stop:  # from a function only marked async, raising it itself
                        value = stop.value
                    except BaseException as error:  # SystemExit, KeyboardInterrupt: the plugin's (PluginExit)
                        value, exc = None, error
                    else:
                        if not ended:
                            watch.guard = None
                            # Its first step held the loop (it goes on in its task, the breaker opens).
                            _open_if_held(guard, now() - t0, hook_s)
                            # free() said there is room, and only the plugin's own first step ran since.
                            held = guard.bulkhead.try_enter()
                            # The rest runs in its task, whose context says whose tasks it starts.
                            task = eager.take(coro, value, watch.charge(guard, t0, hook_s, self))
                            suspended.append(self._suspend(plugin, guard, task, t0, ctx, held=held))
                            continue
                else:
                    try:
                        # In a copy of the context, as a coroutine's first step: a context variable the
                        # plugin sets reaches neither the plugins after it nor the rest of the request.
                        value = copy_context().run(impl.function, *args)
                    except BaseException as error:
                        value, exc = None, error
                watch.guard = None
            if factory_now() is not watch:  # code replaced the loop's task factory meanwhile
                self._rewatch(loop, f"{pid}'s {hook} ran on the loop")
            elapsed = now() - t0
            checked_s = 0.0
            if exc is None and elapsed <= hook_s and checks_list:
                try:
                    result = check_list(hook, value, seen=seen_by(pid) or self._objects_of(pid))
                except BaseException as err:  # a wrong shape, or garbage that breaks the check itself (its
                    # own hash raising SystemExit): _conclude says why and records it, with the time the
                    # check took, without checking it again
                    failed = err
                    checked_s = now() - t0 - elapsed
                else:
                    # Checking the result ran on the loop too: a result slow to check makes a slow call.
                    elapsed = now() - t0
                    if elapsed <= hook_s:
                        guard.breaker.on_success(elapsed)
                        for extra in extras:  # told at once: a guard may count calls in flight
                            extra.record(pid, hook, "ok", elapsed)
                        results[pid] = result
                        fine.append((pid, elapsed))
                        continue
                    blame = False  # it held the loop past the deadline (see below)
                    detail = _overran(elapsed, hook_s, _CHECKED) + _held(guard, elapsed, hook_s)
                    _reopen_if_probe_held(guard, elapsed, hook_s)
                    try:
                        self._fail(pid, hook, guard, "timeout", elapsed, detail, source=(plugin, ctx))
                    except PluginCallError as err:
                        degraded.append(Degraded(plugin=pid, hook=hook, reason=err.kind, detail=err.detail))
                    _open_if_held(guard, elapsed, hook_s)  # recorded above
                    continue
            if elapsed + checked_s > hook_s:
                # It held the event loop past its deadline: the calls waiting meanwhile never had theirs.
                blame = False
            try:
                results[pid] = self._conclude(
                    pid, hook, guard, value, exc, elapsed, hook_s, source=(plugin, ctx), failed=failed,
                    checked_s=checked_s,
                )
            except PluginCallError as err:
                degraded.append(Degraded(plugin=err.plugin, hook=hook, reason=err.kind, detail=err.detail))
            failed = None
        if last is not None:
            released = now()
            value = exc = call = failed = None
            if now() - released > hook_s:
                _let_go(last, now() - released, hook_s)
        if fine:
            self._record_fine(hook, fine)
        if suspended:
            ends = started + limit_s
            try:
                await wait_until([c.future for c in suspended], ends, now)
            except asyncio.CancelledError:
                _abandon(suspended, hook, self.guards)
                raise
            woke = now()
            late = woke - ends > limit_s * _LATE_LOOP
            for call in suspended:
                # A late loop means something held it (a plugin blocking in its task; the one that held
                # it ends slow): the calls that need the loop to go on never had their deadline, and are
                # not charged. A thread call that had run in its thread a whole deadline did not need it.
                charged = blame and (not late or _ran_its_deadline(call, woke, limit_s))
                try:
                    results[call.plugin.id] = self._settle(call, hook, limit_s, blame=charged, hook_s=hook_s)
                except PluginCallError as err:
                    degraded.append(
                        Degraded(plugin=err.plugin, hook=hook, reason=err.kind, detail=err.detail)
                    )
            self._rewatch(loop, f"the {hook} calls that went on in tasks or threads")
        return gathered

    async def call_one(
        self,
        plugin: LoadedPlugin,
        hook: str,
        ctx: PluginContext,
        *,
        deadline_ms: int,
        asks_consent: frozenset[str] = frozenset(),
        at_start: Callable[[], str | None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``hook`` on one plugin and return its validated result.

        ``at_start``: for a call that runs in a worker thread (it may wait there for one, up to its
        deadline), asked in that thread just before the plugin's code starts; a reason it returns (or
        any exception it raises) withdraws the call unstarted, raised as ``rejected`` and not charged
        to the plugin. A call that starts on the loop starts at once: its caller checks before it.

        Raises :class:`PluginCallError` when it raises, misses ``deadline_ms`` or returns the wrong
        shape; a :class:`~fulcrum_sdk.errors.TransactionRefused` is re-raised as it is, an
        :class:`~fulcrum_sdk.errors.OutcomeUnknown` is raised as one of the host's with its text; a
        :class:`~fulcrum_sdk.errors.ScopeDenied` for want of consent to one of ``asks_consent`` (the
        scopes the customer could consent to now: the caller asks them, the plugin is not charged) is
        raised as one of the host's, naming that scope.
        """
        impl = plugin.impls.get(hook)
        if impl is None:
            raise PluginCallError(plugin.id, hook, "error", f"the plugin does not implement {hook}")
        guard = self.resilience.get(plugin.id, hook)
        refused = self._admit(plugin.id, hook, guard, threaded=not (impl.is_async or impl.inline))
        if refused is not None:
            raise PluginCallError(plugin.id, hook, "rejected", refused)
        loop = asyncio.get_running_loop()
        limit_s = deadline_ms / 1000
        self._rewatch(loop)
        call = self._start(loop, Eager(loop), plugin, guard, impl, ctx, kwargs, limit_s, at_start=at_start)
        if isinstance(call, _Call):
            try:
                clock = _clock_of(loop)
                await wait_until([call.future], clock() + limit_s, clock)
            except asyncio.CancelledError:
                _abandon([call], hook, self.guards)
                raise
            self._rewatch(loop, f"{plugin.id}'s {hook} went on in a task or thread")
            # A call withdrawn from the thread queue was never made: ``rejected``, like a full bulkhead,
            # so a caller (a transaction) knows the plugin never saw it.
            return self._settle(call, hook, limit_s, asks_consent=asks_consent, withdrawn="rejected")
        value, exc, t0 = call
        self._rewatch(loop, f"{plugin.id}'s {hook} ran on the loop")
        return self._conclude(
            plugin.id, hook, guard, value, exc, _now(loop) - t0, limit_s, asks_consent=asks_consent,
            source=(plugin, ctx),
        )

    async def in_plugin_thread(
        self, function: Callable[..., _T], *args: Any, plugin: str | None = None, hook: str | None = None
    ) -> _T:
        """Run host code that calls into a plugin (``risk_of``, a params ``__post_init__``) in the
        plugin thread pool, never in the loop's default executor, which the host's own database work
        needs: a plugin hanging there ties up a plugin thread, not the journal.

        With ``plugin``, the thread holds a place in that plugin's ``hook`` bulkhead until it ends
        (even after the caller gave up on it), and a full bulkhead raises :class:`PluginCallError`
        ``rejected`` at once: a plugin that hangs here can tie up at most ``bulkhead_size`` threads.
        """
        loop = asyncio.get_running_loop()
        run = contextvars.copy_context().run
        if plugin is None:
            return await loop.run_in_executor(self._executor, functools.partial(run, function, *args))
        if hook is None:
            raise TypeError("in_plugin_thread: `hook` names the bulkhead and is required with `plugin`")
        guard = self.resilience.get(plugin, hook)
        if self._threads.full(plugin):
            detail = self._threads.refusal()
            self.stats.record(plugin, hook, "rejected", 0.0, detail)
            if self.observer is not None:
                self.observer.observe(plugin, hook, "rejected", 0.0)
            raise PluginCallError(plugin, hook, "rejected", detail)
        if not guard.bulkhead.try_enter():
            detail = f"bulkhead full ({guard.bulkhead.max_concurrent} calls in flight)"
            self.stats.record(plugin, hook, "rejected", 0.0, detail)
            if self.observer is not None:
                self.observer.observe(plugin, hook, "rejected", 0.0)
            raise PluginCallError(plugin, hook, "rejected", detail)
        try:
            inner = self._executor.submit(run, function, *args)
        except RuntimeError:  # the executor was shut down: the host is stopping
            guard.bulkhead.leave()
            raise
        result: _T = await _thread_future(loop, guard, inner, self._threads.ticket(plugin, guard))
        return result

    def breaker_open(self, plugin: str, hook: str) -> bool:
        """True when ``plugin``'s breaker for ``hook`` is open, refusing calls."""
        return self.resilience.get(plugin, hook).breaker.state is BreakerState.OPEN

    def retry_after(self, plugin: str, hook: str) -> int:
        """Whole seconds after which a call refused now may be admitted (``Retry-After``): what is
        left of its open breaker's wait, at least 1 (a full bulkhead frees at any moment)."""
        return max(1, math.ceil(self.resilience.get(plugin, hook).breaker.admits_in()))

    # --- mechanics ---------------------------------------------------------------------------------

    def _spent(self, plugin: str, hook: str) -> None:
        """Count a call left out unasked because the caller's budget was spent before its turn."""
        self.stats.record(plugin, hook, "rejected", 0.0, _SPENT)
        if self.observer is not None:
            self.observer.observe(plugin, hook, "rejected", 0.0)

    def _admit(self, plugin: str, hook: str, guard: Guard, *, threaded: bool = False) -> str | None:
        reason = guard.admit()
        if reason is not None:
            self.stats.record(plugin, hook, "rejected", 0.0, reason)
            if self.observer is not None:
                outcome = "breaker_open" if reason == _BREAKER_OPEN else "rejected"
                self.observer.observe(plugin, hook, outcome, 0.0)
            return reason
        if threaded and self._threads.full(plugin):
            guard.breaker.release()
            guard.bulkhead.leave()
            reason = self._threads.refusal()
            self.stats.record(plugin, hook, "rejected", 0.0, reason)
            if self.observer is not None:
                self.observer.observe(plugin, hook, "rejected", 0.0)
            return reason
        for i, extra in enumerate(self.guards):
            reason = extra.admit(plugin, hook)
            if reason is not None:
                for asked in self.guards[: i + 1]:
                    asked.record(plugin, hook, "rejected", 0.0)
                guard.breaker.release()
                guard.bulkhead.leave()
                self.stats.record(plugin, hook, "rejected", 0.0, reason)
                if self.observer is not None:
                    self.observer.observe(plugin, hook, "rejected", 0.0)
                return reason
        return None

    def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        eager: Eager,
        plugin: LoadedPlugin,
        guard: Guard,
        impl: HookCall,
        ctx: HookContext,
        kwargs: dict[str, Any],
        limit_s: float,
        *,
        at_start: Callable[[], str | None] | None = None,
    ) -> _Call | tuple[Any, BaseException | None, float]:
        """Start one call: ``(value, exception, start time)`` when it finished inline, else a ``_Call``;
        ``limit_s``: its deadline, which a first step holding the event loop is judged by; ``at_start``:
        see :meth:`call_one` (a thread call only)."""
        # Positionally, in the implementation's own order, as pluggy calls hookimpls.
        args = (ctx,) if impl.argnames == _CTX_ONLY else _args(impl.argnames, ctx, kwargs)
        started = _now(loop)
        function = impl.function
        watch = self._watch_on(loop)  # the tasks its code starts are charged to this call
        if impl.is_async or impl.inline:
            watch.sink, watch.limit_s = self, limit_s
            watch.guard, watch.since = guard, started
        if impl.is_async:
            try:
                coro = function(*args)
                first = eager.step(coro)
            except StopIteration as stop:
                guard.bulkhead.leave()
                return stop.value, None, started
            except BaseException as exc:  # SystemExit, KeyboardInterrupt, its own: the plugin's error
                guard.bulkhead.leave()
                return None, exc, started
            finally:
                watch.guard = None
            _open_if_held(guard, _now(loop) - started, limit_s)  # its first step held the loop
            charge = watch.charge(guard, started, limit_s, self)
            return self._suspend(plugin, guard, eager.take(coro, first, charge), started, ctx)
        if impl.inline:
            try:
                value = copy_context().run(function, *args)  # a context of its own (see call_many)
            except BaseException as exc:
                return None, exc, started
            finally:
                watch.guard = None
                guard.bulkhead.leave()
            return value, None, started
        context = contextvars.copy_context()
        # A task its thread starts on the loop (``asyncio.run_coroutine_threadsafe``) is charged to it.
        context.run(OWNER.set, watch.charge(guard, started, limit_s, self))
        run = context.run
        began = [0.0]
        body = functools.partial(function, *args)
        if at_start is not None:
            body = functools.partial(_checked_start, at_start, body)
        try:
            inner = self._executor.submit(run, _timed, began, body)
        except RuntimeError as exc:  # the executor was shut down: the host is stopping
            guard.bulkhead.leave()
            return None, exc, started
        held = self._threads.ticket(plugin.id, guard)
        call = _Call(plugin, guard, _thread_future(loop, guard, inner, held), started, ctx)
        call.began = began
        call.inner = inner
        call.ticket = held
        return call

    @staticmethod
    def _suspend(
        plugin: LoadedPlugin,
        guard: Guard,
        task: asyncio.Task[Any],
        started: float,
        ctx: HookContext,
        *,
        held: bool = True,
    ) -> _Call:
        """A coroutine that suspended: the rest of it runs in ``task``, which frees its bulkhead place
        (``held``: the call holds one)."""
        if held:
            task.add_done_callback(lambda _: guard.bulkhead.leave())
        return _Call(plugin, guard, task, started, ctx)

    def _conclude(
        self,
        pid: str,
        hook: str,
        guard: Guard,
        value: Any,
        exc: BaseException | None,
        elapsed: float,
        limit_s: float,
        *,
        asks_consent: frozenset[str] = frozenset(),
        source: _Source = None,
        deadline_s: float | None = None,
        failed: BaseException | None = None,
        checked_s: float = 0.0,
    ) -> Any:
        """The validated result of a call that finished (inline or not); records the outcome.
        ``failed``: what checking its result raised already (the fast path), in ``checked_s``: counted
        as part of the reading, and not checked again (each check of garbage slow to check held the loop
        again, and the first was not counted: the call held it twice as long as it was charged).
        ``source``: the plugin and the context it was given, named in the log line of a failure. A call
        that held the event loop ``open_on_loop_hold`` deadlines opens its breaker once recorded, however
        it ended (a result, an error, a refusal). ``deadline_s``: the hook's deadline, for a call that
        suspended (``limit_s`` is then unbounded): only checking its result ran on the loop, and that
        alone is judged against it."""
        _reopen_if_probe_held(guard, elapsed, limit_s)
        held, held_limit = elapsed, limit_s  # how long it held the loop, and against what
        late = exc is None and elapsed > limit_s  # only an inline call can: nothing could stop it
        # What the host reads of the call runs the plugin's code on the loop: its exception (what it means,
        # its __str__, its arguments' __str__) or its result (the check, hashes, comparisons, time zones).
        # Timed as part of the call however that ends, as one reading: before, an error's text and a check
        # that failed were read off the clock, so an exception slow to print held every page on the worker
        # while its breaker saw a quick error and never opened.
        reading = time.monotonic()  # the loop's clock
        meaning: _Meaning | None = None
        consent_to = ""  # the scope a want of consent names, as read
        detail = ""
        invalid = False
        result: Any = None
        if exc is not None:
            meaning, consent_to = _meaning(exc, hook, asks_consent)
            if meaning == "unknown" or meaning == "unavailable":
                detail = _text(exc)
            elif meaning == "error":
                detail = _describe(exc)
        elif failed is not None:
            invalid = True
            detail = str(failed)[:_DETAIL_MAX] if type(failed) is ResultError else _describe(failed)
        elif not late:
            try:
                result = _validate(hook, value, self._objects_of(pid))
            except ResultError as err:
                invalid, detail = True, str(err)[:_DETAIL_MAX]
            except BaseException as err:  # garbage that even breaks the check (its hash raising a
                # SystemExit or its own BaseException): still only this plugin's loss
                invalid, detail = True, _describe(err)
        read_s = time.monotonic() - reading + checked_s
        elapsed += read_s
        held = elapsed
        if deadline_s is not None:  # it suspended: only the reading held the loop
            held, held_limit = read_s, deadline_s
        _reopen_if_probe_held(guard, held, held_limit)
        try:
            if exc is not None:
                if meaning == "refused":
                    self._record(pid, hook, guard, "ok", elapsed)
                    raise exc
                if meaning == "unknown":
                    # The plugin knows it may have acted: the caller records "unknown", not a failure. Its
                    # breaker counts it as one: a partner system that keeps timing out after taking orders
                    # then has later ones refused at once (503, retry later, nothing done), instead of each
                    # waiting out its deadline and adding one more transaction to reconcile.
                    self._record(pid, hook, guard, "error", elapsed, detail)
                    # One of the host's with the text read: the caller prints it, and the plugin's own
                    # (a __str__ raising SystemExit through the logging handler) took the request down.
                    raise OutcomeUnknown(detail) from None
                if meaning == "consent":
                    # The customer has not consented yet: the page cannot be shown until they do, which
                    # the caller asks for; the plugin did nothing wrong. The scope as it was read.
                    self._record(pid, hook, guard, "ok", elapsed)
                    raise ScopeDenied(consent_to, plugin_id=pid, reason=NO_CONSENT) from None
                if meaning == "unavailable":
                    # The bank's systems were late, not the plugin: left out, its breaker not charged.
                    self._fail(
                        pid, hook, guard, "error", elapsed, detail, blame=False, data_unavailable=True,
                        source=source,
                    )
                self._fail(pid, hook, guard, "error", elapsed, detail, source=source)
            if late:
                detail = _overran(elapsed, limit_s) + _held(guard, elapsed, limit_s)
                self._fail(pid, hook, guard, "timeout", elapsed, detail, source=source)
            if invalid:
                self._fail(pid, hook, guard, "invalid", elapsed, detail, source=source)
            if elapsed > limit_s:  # checking its result held the loop past the deadline
                detail = _overran(elapsed, limit_s, _CHECKED) + _held(guard, elapsed, limit_s)
                self._fail(pid, hook, guard, "timeout", elapsed, detail, source=source)
            self._record(pid, hook, guard, "ok", elapsed)
            return result
        finally:  # recorded by then, however it ended: opened if it held the loop that long
            _open_if_held(guard, held, held_limit)
            if exc is not None and detail and self.on_plugin_error is not None:
                self.on_plugin_error(pid, hook, exc)

    def _settle(
        self, call: _Call, hook: str, limit_s: float, *, blame: bool = True,
        asks_consent: frozenset[str] = frozenset(),
        withdrawn: DegradedReason = "timeout",
        hook_s: float | None = None,
    ) -> Any:
        """The validated result of a call that suspended, or :class:`PluginCallError`; a thread call
        withdrawn from the queue unstarted at the deadline fails as ``withdrawn``, not charged.
        ``hook_s``: the hook's own deadline when the caller's ``limit_s`` is shorter."""
        future, pid, guard = call.future, call.plugin.id, call.guard
        began = call.began
        source = (call.plugin, call.ctx)
        if not future.done():
            # Cancelled here, not in the future's callback (which runs later): True only if it never ran.
            unstarted = call.inner is not None and call.inner.cancel()
            if call.ticket is not None and call.inner is not None and call.inner.running():
                call.ticket.abandon()  # counted now, before the next call of this plugin is admitted
            elif call.inner is None:
                _given_up(guard, future)  # a task: stuck until it ends (at once, if it obeys the cancel)
            future.cancel()  # a task gets CancelledError; a thread is abandoned, its result ignored
            future.add_done_callback(_consume)
            if unstarted:
                self._fail(pid, hook, guard, withdrawn, limit_s, "not started within the deadline "
                           f"({limit_s * 1000:.0f} ms): every worker thread was busy; it was withdrawn "
                           "and never ran", blame=False, source=source)
            if began is not None and began[0] == 0.0:
                # Picked up by a thread only just now (not yet stamped): it may have begun, so it is a
                # timeout, but the host's congestion, not the plugin, used its time: not charged.
                self._fail(pid, hook, guard, "timeout", limit_s, "not started within the deadline "
                           f"({limit_s * 1000:.0f} ms): every worker thread was busy", blame=False,
                           source=source)
            self._fail(
                pid, hook, guard, "timeout", limit_s, f"no answer within {limit_s * 1000:.0f} ms",
                blame=blame, source=source,
            )
        # A thread call's own duration starts when a worker thread picked it up, not at submission. A call
        # that ended in the loop pass that ended the wait has not been stamped yet: it ended just now.
        ended = call.ended or _now(future.get_loop())
        elapsed = max(0.0, ended - (began[0] if began is not None and began[0] else call.started))
        if future.cancelled():
            self._fail(pid, hook, guard, "error", elapsed, "the call was cancelled", source=source)
        exc = future.exception()
        if type(exc) is _NotStarted:  # its caller's check at the start refused it: the plugin never ran
            self._fail(
                pid, hook, guard, "rejected", elapsed, f"not started: {exc}", blame=False, source=source
            )
        return self._conclude(
            pid, hook, guard, None if exc else future.result(), exc, elapsed, float("inf"),
            asks_consent=asks_consent, source=source, deadline_s=limit_s if hook_s is None else hook_s,
        )

    def _record_fine(self, hook: str, calls: list[tuple[str, float]]) -> None:
        """Count calls that ended ``ok`` in the stats and metrics, a batch at a time (their breakers
        and guards were told as each call ended)."""
        self.stats.record_ok(hook, calls)
        observer = self.observer
        if observer is not None:
            observe_ok = getattr(observer, "observe_ok", None)
            if observe_ok is not None:
                observe_ok(hook, calls)
            else:
                for plugin, seconds in calls:
                    observer.observe(plugin, hook, "ok", seconds)

    def _fail(
        self,
        plugin: str,
        hook: str,
        guard: Guard,
        kind: DegradedReason,
        seconds: float,
        detail: str,
        *,
        blame: bool = True,
        data_unavailable: bool = False,
        source: _Source = None,
    ) -> NoReturn:
        self._record(plugin, hook, guard, kind, seconds, detail, blame=blame)
        partner = partner_request_id_of(*source) if source is not None else ""
        if partner:
            log.warning(
                "plugin %r left out of %s (%s): %s [partner request id %s]",
                plugin, hook, kind, detail, partner,
                extra={"plugin": plugin, "hook": hook, "partner_request_id": partner},
            )
        else:
            log.warning(
                "plugin %r left out of %s (%s): %s", plugin, hook, kind, detail,
                extra={"plugin": plugin, "hook": hook},
            )
        raise PluginCallError(plugin, hook, kind, detail, data_unavailable=data_unavailable)

    def _record(
        self,
        plugin: str,
        hook: str,
        guard: Guard,
        outcome: Outcome,
        seconds: float,
        detail: str = "",
        *,
        blame: bool = True,
    ) -> None:
        if not blame:
            guard.breaker.release()
        elif outcome == "ok":
            guard.breaker.on_success(seconds)
        elif outcome == "timeout":
            guard.breaker.on_timeout(seconds)
        else:
            guard.breaker.on_error(seconds)
        self.stats.record(plugin, hook, outcome, seconds, detail)
        for extra in self.guards:
            extra.record(plugin, hook, outcome, seconds)
        if self.observer is not None:
            self.observer.observe(plugin, hook, outcome, seconds)


def _args(argnames: tuple[str, ...], ctx: HookContext, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The hook arguments in the implementation's own order, as pluggy passes them (positionally)."""
    return tuple(ctx if n == "ctx" else kwargs[n] for n in argnames)


class _NotStarted(Exception):
    """A thread call that its caller's ``at_start`` check withdrew as its thread picked it up: the
    plugin's code never ran (the host's own exception, never one of a plugin's)."""


def _checked_start(at_start: Callable[[], str | None], call: Callable[[], Any]) -> Any:
    """``call``, unless ``at_start`` (the caller's check, in the worker thread) gives a reason not to
    start it, or cannot tell (whatever it raises withdraws the call too: it fails closed)."""
    try:
        why = at_start()
    except Exception as exc:
        why = f"its start could not be checked ({type(exc).__name__}: {exc})"
    if why is not None:
        raise _NotStarted(why)
    return call()


def _timed(began: list[float], call: Callable[[], Any]) -> Any:
    """Run ``call`` in a worker thread, noting when it started (loop clock: ``time.monotonic``).

    No signal is delivered to a worker thread, so a ``KeyboardInterrupt`` out of one is the plugin's
    own raise: carried as its error (:class:`PluginExit`), not raised on through the request."""
    began[0] = time.monotonic()
    try:
        return call()
    except KeyboardInterrupt as raised:
        raise PluginExit(raised) from raised


class _ThreadShare:
    """How many worker threads each plugin left running after their callers gave up on them (counted
    on the event loop): a thread cannot be stopped, so a plugin hung in sync code keeps its threads."""

    __slots__ = ("_abandoned", "_pool", "cap")

    def __init__(self, cap: int, pool: DaemonThreadPool) -> None:
        self.cap = cap
        self._pool = pool  # lent each abandoned thread, so it may start another in its place
        self._abandoned: dict[str, int] = {}

    def full(self, plugin: str) -> bool:
        """True when ``plugin`` left its share of threads running: a new sync call is refused, not queued."""
        return self._abandoned.get(plugin, 0) >= self.cap

    def refusal(self) -> str:
        """Why a call of a plugin whose share is used up is refused."""
        return (
            f"plugin threads in use ({self.cap} calls of this plugin ran past their deadline and have "
            "not returned)"
        )

    def ticket(self, plugin: str, guard: Guard) -> _ThreadTicket:
        """What one thread call of ``plugin`` (in ``guard``'s bulkhead) reports: given up while
        running, and ended."""
        return _ThreadTicket(self._abandoned, plugin, guard, self._pool)


class _ThreadTicket:
    """One thread call's place in its plugin's count of abandoned threads, and in its guard's stuck
    calls (touched on the loop only)."""

    __slots__ = ("_abandoned", "_counted", "_ended", "_guard", "_plugin", "_pool")

    def __init__(self, abandoned: dict[str, int], plugin: str, guard: Guard, pool: DaemonThreadPool) -> None:
        self._abandoned, self._plugin, self._guard, self._pool = abandoned, plugin, guard, pool
        self._counted = self._ended = False

    def abandon(self) -> None:
        """The caller gave up while the thread runs on: count it until it ends."""
        if not (self._counted or self._ended):
            self._counted = True
            self._abandoned[self._plugin] = self._abandoned.get(self._plugin, 0) + 1
            self._guard.stuck += 1
            # The thread that may start in its place takes work already queued, but only once the loop
            # has finished what it is doing: a deadline that abandons this call withdraws the calls
            # queued with it in the same pass, and those must never run.
            self._pool.lend(1, start=False)
            asyncio.get_running_loop().call_soon(self._pool.start_queued)

    def end(self) -> None:
        """The thread returned (or never ran): it no longer counts."""
        self._ended = True
        if self._counted:
            self._counted = False
            self._guard.stuck -= 1
            self._pool.lend(-1)
            left = self._abandoned[self._plugin] - 1
            if left:
                self._abandoned[self._plugin] = left
            else:
                del self._abandoned[self._plugin]


def _thread_future(
    loop: asyncio.AbstractEventLoop,
    guard: Guard,
    inner: concurrent.futures.Future[Any],
    ticket: _ThreadTicket | None = None,
) -> asyncio.Future[Any]:
    """The loop's future of a worker thread's call, which holds a bulkhead place until the thread ends.

    What ``asyncio.wrap_future`` does, but the outcome and the freed place reach the loop in one
    wake-up instead of two. Cancelling the returned future (the caller gave up) cancels a call still
    queued, so it never runs; a running thread cannot be stopped and keeps its place until it returns.
    """
    future = loop.create_future()

    def finished(_: concurrent.futures.Future[Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to free or tell
            loop.call_soon_threadsafe(_hand_over, future, inner, guard, ticket)

    def given_up(done: asyncio.Future[Any]) -> None:
        # A running thread cannot be cancelled: it is abandoned, and counts until it returns.
        if done.cancelled() and not inner.cancel() and inner.running() and ticket is not None:
            ticket.abandon()

    future.add_done_callback(given_up)
    inner.add_done_callback(finished)
    return future


def _hand_over(
    future: asyncio.Future[Any],
    inner: concurrent.futures.Future[Any],
    guard: Guard,
    ticket: _ThreadTicket | None = None,
) -> None:
    """On the loop: free the place (and the plugin's abandoned thread), and give the thread's outcome
    to ``future`` unless it was given up."""
    guard.bulkhead.leave()
    if ticket is not None:
        ticket.end()
    if future.done():
        return
    if inner.cancelled():
        future.cancel()
        return
    exc = inner.exception()
    # A future cannot hold a StopIteration: it would end the awaiting coroutine. Told by its type and
    # named by its type's name, never by reading the exception (its ``__class__``, its ``repr``): plugin
    # code that may raise, which here, a loop callback, left the call unanswered until its deadline.
    if exc is not None and issubclass(type(exc), StopIteration):
        future.set_exception(RuntimeError(f"the plugin raised {type(exc).__name__}"))
    elif exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(inner.result())
