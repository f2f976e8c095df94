"""Run a coroutine eagerly: drive it to its first suspension inline, and only then hand it to a task.

Most plugin coroutines never wait (they compute from the context and return), and scheduling an
asyncio task plus a timeout for each of them costs more than the plugin's work. :meth:`Eager.step`
sends the first ``None`` in the caller's stack frame: a coroutine that returns without suspending
produces its result right there; one that does suspend goes on in a task with :meth:`Eager.take`,
which hands it the already-yielded future exactly as the coroutine itself would have.

The first step runs *as* the task that goes on with it, in that task's context (what Python 3.12's
eager tasks do): code that captures ``asyncio.current_task()`` before its first await, such as
``asyncio.timeout``, ``asyncio.TaskGroup`` or an anyio cancel scope (httpx), must cancel the plugin,
never the request that called it, and a context variable set before the first await must be the one
seen, and reset, after it. So one spare task is made ahead; it stays current while a coroutine takes
its first step and becomes that coroutine's task if it suspends. A coroutine that returns inline
leaves the spare to the next one, unless it left it a cancellation or changed its context (which the
next coroutine must not inherit); a spare nobody took ends at its first step.
"""

from __future__ import annotations

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task  # what the loop itself calls around a task's step
from collections.abc import Coroutine, Generator
from typing import Any

from fulcrum_core.dispatch.leftovers import OWNER, Charge, untagged_task
from fulcrum_core.dispatch.results import PluginExit

__all__ = ["Eager", "PluginExit", "resume"]


class _Resume:
    """An awaitable that continues ``coro`` after it yielded ``first`` (what ``yield from`` does)."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, to_yield = self.coro, self.first
        self.first = None  # the task owns the yielded future from here on
        while True:
            try:
                sent = yield to_yield
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # CancelledError on timeout: deliver it to the plugin
                try:
                    to_yield = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
                except (Exception, asyncio.CancelledError):
                    raise
                except BaseException as raised:  # KeyboardInterrupt too: see PluginExit
                    raise PluginExit(raised) from raised
            else:
                try:
                    to_yield = coro.send(sent)
                except StopIteration as stop:
                    return stop.value
                except (Exception, asyncio.CancelledError):
                    raise
                except BaseException as raised:  # KeyboardInterrupt too: see PluginExit
                    raise PluginExit(raised) from raised


async def resume(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    """The rest of ``coro``, which already yielded ``first`` when it was sent its first ``None``."""
    return await _Resume(coro, first)


class _Spare:
    """A task made ahead, with its context, and what it goes on with once taken (nothing if never)."""

    __slots__ = ("clean", "context", "coro", "first", "made", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.coro: Coroutine[Any, Any, Any] | None = None
        self.first: Any = None
        self.context = contextvars.copy_context()
        self.clean = self.context.copy()  # the same mapping: equal (at once) until a step changes it
        self.made = False
        # The dispatcher's own task, made past the host's task factory (``leftovers.py``), so never taken
        # for a task the plugin whose code runs now started, and at no cost of that factory's.
        self.task: asyncio.Task[Any] = untagged_task(loop, self._run(), self.context)
        self.made = True

    async def _run(self) -> Any:
        if not self.made:
            # An eager task factory (3.12+) started it inside create_task, before anyone could take it:
            # it waits for the loop's next pass, as a task made the ordinary way would.
            await asyncio.sleep(0)
        coro = self.coro
        if coro is None:
            return None  # nobody took it
        first, self.coro, self.first = self.first, None, None
        return await _Resume(coro, first)


class Eager:
    """First steps of coroutines for one caller (one task), each run as the task that would go on with it."""

    __slots__ = ("_caller", "_loop", "_spare")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._caller = asyncio.current_task(loop)
        self._spare: _Spare | None = None

    def step(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """``coro.send(None)`` as the spare task and in its context: what it yielded, or StopIteration."""
        ended, value = self.first_step(coro)
        if ended:
            raise StopIteration(value)
        return value

    def first_step(self, coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
        """:meth:`step` for the dispatcher's hot path: ``(True, result)`` when the coroutine returned
        inline, ``(False, what it yielded)`` when it suspended; anything else it raises, raised.

        The common ending (a return) is caught here once instead of being re-raised through the
        caller's frame as ``StopIteration`` (≈ 0.2 µs a call)."""
        spare = self._spare
        if spare is None:
            spare = self._spare = _Spare(self._loop)
        loop, caller, task = self._loop, self._caller, spare.task
        if caller is not None:
            _leave_task(loop, caller)
        _enter_task(loop, task)
        try:
            return False, spare.context.run(coro.send, None)
        except StopIteration as stop:
            if task.cancelling() or spare.context != spare.clean:
                self._spare = None
            return True, stop.value
        except BaseException:
            # It ended inline: a cancellation it left pending on the spare or a context variable it set
            # would fall to the next coroutine, so that one gets a fresh spare.
            if task.cancelling() or spare.context != spare.clean:
                self._spare = None
            raise
        finally:
            _leave_task(loop, task)
            if caller is not None:
                _enter_task(loop, caller)

    def take(
        self, coro: Coroutine[Any, Any, Any], first: Any, charge: Charge | None = None
    ) -> asyncio.Task[Any]:
        """The task ``coro`` took its first step as, now going on with it (it suspended on ``first``);
        ``charge``: the plugin call it goes on as, which the tasks it starts are charged to
        (``leftovers.py``)."""
        spare = self._spare
        if spare is None:
            raise RuntimeError("Eager.take() follows a step() that suspended")
        self._spare = None
        if charge is not None:
            spare.context.run(OWNER.set, charge)
        spare.coro, spare.first = coro, first
        return spare.task
