"""Tasks a plugin starts and does not await: known to be its own, bounded by its call's deadline, reported.

A hook's call is bounded (``dispatcher.py``), but a task the plugin starts in it (``asyncio.create_task``,
``loop.create_task``, ``asyncio.ensure_future``) and leaves running outlives the call: nothing would
stop it, nothing would charge it to the plugin, and if it raised asyncio would log "Task exception was
never retrieved" with nothing naming the plugin. So the host installs :class:`TaskWatch` as the event
loop's task factory (``install``, when the app starts; the dispatcher makes sure of it on any loop it
runs on), composed with any factory set before it. It knows which plugin's code is running:

- inline, on the loop's thread (a coroutine's first step, a ``@nonblocking`` function), the dispatcher
  notes the call on the watch (:attr:`TaskWatch.guard`, two attribute writes a call: nothing per call
  on the hot path beyond them, and nothing at all for a call that starts no task);
- in a task of the plugin's (the rest of a coroutine that suspended, a task it started, a callback such
  a task scheduled) and in a worker thread's call, the context variable :data:`OWNER` says whose call
  it is: the dispatcher sets it in the context of a call that suspended or runs in a thread, and the
  watch in the context of every task it tags, so the tasks those start are the plugin's too.

Every task started so is charged to that call (:class:`Charge`), and runs its coroutine through
:class:`_Guarded`: a ``SystemExit`` or ``KeyboardInterrupt`` it raises is carried as
:class:`~fulcrum_core.dispatch.results.PluginExit`, an error like any other, since asyncio re-raises
either out of the event loop and the worker stopped. At the call's deadline (its start plus
the hook's own deadline, the bound the call itself had) whatever is still running is cancelled, and
one that ended with an exception nobody retrieved has it retrieved; both are logged naming plugin and
hook and counted in ``/metrics`` (``fulcrum_plugin_leftover_tasks_total``). Not at the call's end: a
plugin that fires off a short write and returns gets it done within the time its call had anyway, and
one timer serves all of a call's tasks. A leftover cancelled but still running (it caught the
cancellation) counts among its guard's stuck calls until it ends, so no half-open probe goes out
meanwhile, as for a call of its own that would not stop.

Leftovers are not recorded in the plugin's breaker: the breaker is told exactly once per admitted call,
and by the time a leftover ends its call was recorded, often in another state of the breaker (a
straggler must never be taken for a half-open probe). The page never waited for a leftover, and the
deadline bounds what one can cost; the count, the log line and the kill switch are how an operator
stops a plugin that keeps leaving them.

The host's own tasks are never a plugin's, though host code runs with a plugin's code on the stack (a
storage refresh-ahead, a consent refresh, a shared flight): the host starts them with :func:`host_task`,
which runs them in a context without :data:`OWNER` and out of the inline call's reach. The dispatcher's
own spare tasks (``eager.py``) are made past the watch (:func:`untagged_task`).

Not covered: a callback a plugin schedules with ``loop.call_soon``/``call_later`` from code that runs
inline (its first step, a ``@nonblocking`` function) runs in a context captured before the dispatcher
could mark it, so a task that callback starts is untagged. Setting the context variable for every inline
call would cost each call of the home page a context copy; a task started from such code directly, or
from anything that runs in a plugin's task, is covered. Nor is a callback of a plugin's guarded as its
tasks are (:class:`_Guarded`): one raising ``SystemExit`` or ``KeyboardInterrupt`` still stops the loop,
as nothing stands between the loop and a callback without wrapping every ``call_soon`` (the host's too).
Nor is a task a plugin builds with ``asyncio.Task(...)`` itself: that skips the loop's task factory, so it
is neither charged nor guarded (its ``SystemExit`` stops the loop); the partner guide says not to.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import weakref
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from fulcrum_core.dispatch.results import PluginExit

if TYPE_CHECKING:
    from fulcrum_core.dispatch.resilience import Guard

__all__ = [
    "OWNER",
    "Charge",
    "LeftoverSink",
    "TaskWatch",
    "given_up",
    "host_code",
    "host_task",
    "install",
    "plugin_now",
    "stop_waiting_for_given_up",
    "untagged_task",
    "watch_of",
]

log = logging.getLogger("fulcrum.dispatch")

_T = TypeVar("_T")
LeftoverOutcome = Literal["cancelled", "error"]


class LeftoverSink(Protocol):
    """Told of each leftover task (the dispatcher: it logs and counts them)."""

    def leftover(self, plugin: str, hook: str, outcome: LeftoverOutcome, detail: str) -> None:
        """``cancelled``: still running at the deadline; ``error``: it raised and nobody retrieved it."""
        ...


class Charge:
    """The tasks one plugin call started, cancelled if still running at ``ends`` (the loop's clock)."""

    __slots__ = ("deadline_ms", "ends", "guard", "loop", "since", "sink", "tasks")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, guard: Guard, since: float, limit_s: float, sink: LeftoverSink
    ) -> None:
        self.loop = loop
        self.guard = guard
        self.since = since
        self.ends = since + limit_s
        self.deadline_ms = limit_s * 1000
        self.sink = sink
        self.tasks: list[asyncio.Task[Any]] = []  # also keeps them from being collected while they run

    def adopt(self, task: asyncio.Task[Any]) -> None:
        """Charge ``task`` to this call; the first one sets the timer (one past the deadline: at once)."""
        tasks = self.tasks
        if not tasks:
            self.loop.call_at(self.ends, self.expire)
        tasks.append(task)

    def expire(self) -> None:
        """The deadline: cancel what still runs, and report what raised unretrieved."""
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            if not task.done():
                task.cancel()
                given_up(task)
                self.guard.stuck += 1
                task.add_done_callback(self._ended_after_cancel)
                self._report(
                    "cancelled", f"still running at the call's {self.deadline_ms:.0f} ms deadline; cancelled"
                )
            elif _unretrieved(task):
                self._report_error(task)

    def _ended_after_cancel(self, task: asyncio.Task[Any]) -> None:
        self.guard.stuck -= 1
        if not task.cancelled() and task.exception() is not None:  # it raised something else instead
            self._report_error(task)

    def _report_error(self, task: asyncio.Task[Any]) -> None:
        exc = task.exception()  # retrieved: asyncio will not log it as lost
        self._report("error", f"raised {_describe(exc)}")

    def _report(self, outcome: LeftoverOutcome, detail: str) -> None:
        try:
            self.sink.leftover(self.guard.plugin, self.guard.hook, outcome, detail)
        except Exception:  # a timer callback: the loop would only log it
            log.exception("could not report a leftover task of plugin %r", self.guard.plugin)


_GIVEN_UP: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
"""Plugins' tasks the host cancelled and stopped waiting for, until they end (see :func:`given_up`)."""


def given_up(task: asyncio.Task[Any]) -> None:
    """Note ``task``, a plugin's task the host has just cancelled (its call's, past the deadline, or one
    it left behind), until it ends: one that catches its cancellation and goes on must not hold the
    worker when it stops (:func:`stop_waiting_for_given_up`)."""
    if not task.done():
        _GIVEN_UP.add(task)


async def stop_waiting_for_given_up(timeout_s: float) -> int:
    """When the host stops: give the plugins' tasks it gave up on and that still run ``timeout_s`` to
    end, then take those still running off the loop's list of its tasks, which the loop's runner
    (``asyncio.run``, uvicorn's) cancels and then waits for without a bound as it closes: a task that
    ignores its cancellation kept the worker alive until it was killed. How many were left running."""
    loop = asyncio.get_running_loop()
    running = [task for task in list(_GIVEN_UP) if not task.done() and task.get_loop() is loop]
    if running:
        await asyncio.wait(running, timeout=timeout_s)
    left = [task for task in running if not task.done()]
    forget = getattr(asyncio.tasks, "_unregister_task", None)  # what a task ending does (3.11-3.13)
    if left and forget is None:
        log.warning(
            "%d plugin task(s) ignore their cancellation, and this Python's asyncio has no "
            "_unregister_task to take them off the loop's list: the worker may wait for them as it stops",
            len(left),
        )
    for task in left:
        _GIVEN_UP.discard(task)
        if forget is not None:
            forget(task)
    return len(left)


def _unretrieved(task: asyncio.Future[Any]) -> bool:
    """A done task that raised and whose exception no one has asked for (asyncio's own flag, which it
    reads as the task is collected to log "never retrieved"; both of its Task classes have it)."""
    return bool(getattr(task, "_log_traceback", False))


def _describe(exc: BaseException | None) -> str:
    if type(exc) is PluginExit:  # its SystemExit (or the like), carried: say which
        exc = exc.raised
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:  # its own __str__ raising
        text = type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


OWNER: contextvars.ContextVar[Charge | None] = contextvars.ContextVar("fulcrum_task_owner", default=None)
"""The plugin call whose code runs in this context (None: the host's)."""

class _Guarded(Coroutine[Any, Any, Any]):
    """The coroutine a task a plugin started runs: the plugin's ``coro``, stepped as it is, except that
    a ``BaseException`` that is not an ``Exception`` (nor a cancellation, the host's) comes out as
    :class:`PluginExit`, which asyncio keeps in the task instead of raising it out of the event loop.
    Each step is handed on, so a task cancelled before it started closes the plugin's coroutine as
    asyncio would (a wrapping ``async def`` would leave it "never awaited"); its other attributes
    (``__name__``, ``cr_frame``) are the plugin's coroutine's, for a task factory set before the host's
    (a tracer naming tasks) and the task's repr."""

    __slots__ = ("_coro",)

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro

    def send(self, value: Any) -> Any:
        try:
            return self._coro.send(value)
        except (Exception, asyncio.CancelledError):  # StopIteration (its return) among them
            raise
        except BaseException as raised:
            raise PluginExit(raised) from raised

    def throw(self, exc: Any, *rest: Any) -> Any:
        try:
            return self._coro.throw(exc, *rest)
        except (Exception, asyncio.CancelledError):
            raise
        except BaseException as raised:
            raise PluginExit(raised) from raised

    def close(self) -> None:
        self._coro.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._coro, name)

    def __await__(self) -> Generator[Any, None, Any]:
        return (yield from self._coro.__await__())  # not how a task runs it (send/throw): for completeness


def _plugins(coro: Any) -> Any:
    """What a task the plugin starts runs: ``coro`` as :class:`_Guarded` (anything that is not a
    coroutine is passed on as it is, for the task to refuse as it would)."""
    return _Guarded(coro) if asyncio.iscoroutine(coro) else coro


def untagged_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, _T], context: contextvars.Context
) -> asyncio.Task[_T]:
    """A task of the dispatcher's own (``eager.py``'s spare tasks, which run plugin code it bounds
    itself), made as the loop would make it but past the :class:`TaskWatch`: it is never tagged, and
    costs no more than without the watch (one a page, on the home page's path)."""
    factory = loop.get_task_factory()
    if isinstance(factory, TaskWatch):
        return factory._make(loop, coro, context, {})
    return loop.create_task(coro, context=context)


class TaskWatch:
    """The event loop's task factory: tags each task a plugin's code starts with that plugin's call.

    ``guard``/``since``/``limit_s``/``sink``: the call whose code runs inline now (set by the dispatcher
    around it, ``guard`` None otherwise)."""

    __slots__ = ("_charge", "guard", "limit_s", "loop", "previous", "since", "sink")

    def __init__(self, loop: asyncio.AbstractEventLoop, previous: Any = None) -> None:
        self.loop = loop
        self.previous = previous
        self.guard: Guard | None = None
        self.since = 0.0
        self.limit_s = 0.0
        self.sink: LeftoverSink | None = None
        self._charge: Charge | None = None

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Any,
        context: contextvars.Context | None = None,
        **kwargs: Any,
    ) -> asyncio.Task[Any]:
        guard = self.guard
        if guard is None:  # no plugin code inline: the task is a plugin's if its context says so
            charge = OWNER.get() if context is None else context.get(OWNER)
            if charge is None:
                return self._make(loop, coro, context, kwargs)
            task = self._make(loop, _plugins(coro), context, kwargs)  # its context carries the charge on
            charge.adopt(task)
            return task
        charge = self.current()
        if context is None:
            context = contextvars.copy_context()
        if context.get(OWNER) is not charge:
            # A context entered right now (the plugin passed its own) cannot be changed: the task is
            # charged all the same, only the tasks it starts in turn are not.
            with contextlib.suppress(RuntimeError):
                context.run(OWNER.set, charge)
        task = self._make(loop, _plugins(coro), context, kwargs)
        charge.adopt(task)
        return task

    def _make(
        self, loop: asyncio.AbstractEventLoop, coro: Any, context: contextvars.Context | None, kwargs: Any
    ) -> asyncio.Task[Any]:
        """The task, as the factory set before this one (or asyncio) makes it."""
        previous = self.previous
        if previous is None:
            return asyncio.Task(coro, loop=loop, context=context, **kwargs)
        if context is None:  # as the loop calls a factory when it has no context to pass
            return previous(loop, coro, **kwargs)  # type: ignore[no-any-return]
        return previous(loop, coro, context=context, **kwargs)  # type: ignore[no-any-return]

    def current(self) -> Charge:
        """The charge of the call running inline now (one per call, made when first asked)."""
        charge, guard = self._charge, self.guard
        if charge is None or charge.guard is not guard or charge.since != self.since:
            if guard is None or self.sink is None:
                raise RuntimeError("TaskWatch.current(): no plugin call is running inline")
            charge = self._charge = Charge(self.loop, guard, self.since, self.limit_s, self.sink)
        return charge

    def charge(self, guard: Guard, since: float, limit_s: float, sink: LeftoverSink) -> Charge:
        """The charge of a call of ``guard`` that started at ``since``: the one its inline code already
        made, else a new one (a call that suspended, or runs in a worker thread)."""
        charge = self._charge
        if charge is not None and charge.guard is guard and charge.since == since:
            return charge
        return Charge(self.loop, guard, since, limit_s, sink)


def watch_of(loop: asyncio.AbstractEventLoop) -> TaskWatch | None:
    """The watch installed on ``loop``, if its task factory is one."""
    factory = loop.get_task_factory()
    return factory if isinstance(factory, TaskWatch) else None


def plugin_now() -> str | None:
    """The id of the plugin whose code runs now, in this thread: its call's context says so (a task of
    its, a worker thread's call), or it runs inline on the loop (the watch knows); None for the host's.
    Asked by the loop's default executor for each job (``app.py``), not on the page's path."""
    charge = OWNER.get()
    if charge is not None:
        return charge.guard.plugin
    try:
        watch = watch_of(asyncio.get_running_loop())
    except RuntimeError:  # no loop in this thread
        return None
    guard = watch.guard if watch is not None else None
    return guard.plugin if guard is not None else None


def install(loop: asyncio.AbstractEventLoop | None = None) -> TaskWatch:
    """Make ``loop``'s task factory (the running loop's by default) a :class:`TaskWatch`, around the
    factory already set if any; the one already installed if it is one."""
    loop = loop if loop is not None else asyncio.get_running_loop()
    previous = loop.get_task_factory()
    if isinstance(previous, TaskWatch):
        return previous
    watch = TaskWatch(loop, previous)
    loop.set_task_factory(watch)
    return watch


def host_task(
    coro: Coroutine[Any, Any, _T],
    *,
    name: str | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
    context: contextvars.Context | None = None,
) -> asyncio.Task[_T]:
    """``loop.create_task(coro)`` for a task of the host's own: never charged to a plugin, whichever
    plugin's code is on the stack, nor are the tasks it starts. ``context``: the one to run it in (a copy
    of the current one by default); it must not be entered now."""
    loop = loop if loop is not None else asyncio.get_running_loop()
    if context is None:
        context = contextvars.copy_context()
    if context.get(OWNER) is not None:
        context.run(OWNER.set, None)
    with host_code(loop):
        return loop.create_task(coro, name=name, context=context)


class host_code:  # noqa: N801 - a context manager used like a function
    """Within it, host code called from a plugin's inline code starts tasks of its own (not the plugin's):
    ``with host_code(loop): ...`` (synchronous code only; tasks of a plugin's own task: :func:`host_task`)."""

    __slots__ = ("_guard", "_watch")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._watch = watch_of(loop if loop is not None else asyncio.get_running_loop())
        self._guard: Guard | None = None

    def __enter__(self) -> None:
        if self._watch is not None:
            self._guard, self._watch.guard = self._watch.guard, None

    def __exit__(self, *exc: object) -> None:
        if self._watch is not None:
            self._watch.guard = self._guard
