"""The dispatcher: calls each plugin's hookimpl on its own, under a deadline, and validates the result.

pluggy's multicall stops at the first exception and knows no deadline, so the host never uses it on
a request path. Here every plugin is started at once — ``async def`` impls as tasks, plain functions
in a worker thread — and one ``asyncio.wait`` with the hook's deadline collects them. A plugin that
raises, misses the deadline or returns the wrong shape loses its contribution and is listed in
``Gathered.degraded``; the others are unaffected. Nothing waits on a late plugin: a late task is
cancelled and a late thread abandoned, so a call never takes longer than its deadline.

Seams for the resilience work: :class:`CallGuard` objects are asked before each call (a breaker or a
bulkhead may refuse it) and told how it ended; ``_start`` is the one place that decides how a hookimpl
runs, so a fast path for plugins that never wait can be added there without touching the callers.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn, Protocol

from fulcrum_sdk._validate import LIST_RESULT_TYPES, ResultError, check_list, check_transaction_result
from fulcrum_sdk.context import PluginContext
from fulcrum_sdk.errors import TransactionRefused

from fulcrum_core.dispatch.results import Degraded, DegradedReason, Gathered, Outcome, PluginCallError
from fulcrum_core.dispatch.stats import CallStats
from fulcrum_core.plugins import HookCall, LoadedPlugin
from fulcrum_core.settings import Settings

__all__ = ["CallGuard", "Degraded", "Dispatcher", "Gathered", "PluginCallError"]

log = logging.getLogger("fulcrum.dispatch")

_DETAIL_MAX = 300


class CallGuard(Protocol):
    """Consulted around every plugin call (circuit breakers, bulkheads, metrics)."""

    def admit(self, plugin: str, hook: str) -> str | None:
        """``None`` to let the call run, or the reason it is refused (e.g. ``breaker open``)."""
        ...

    def record(self, plugin: str, hook: str, outcome: Outcome, seconds: float) -> None:
        """Told exactly once per ``admit`` asked of this guard how the call ended and how long it took;
        ``rejected`` when this or a later guard refused it (so a bulkhead can give its place back)."""
        ...


class _Call:
    """One plugin call in flight: its future and when it ended (loop time)."""

    __slots__ = ("ended", "future", "plugin")

    def __init__(self, plugin: LoadedPlugin, future: asyncio.Future[Any]) -> None:
        self.plugin = plugin
        self.future = future
        self.ended = 0.0
        future.add_done_callback(self._stamp)

    def _stamp(self, future: asyncio.Future[Any]) -> None:
        self.ended = future.get_loop().time()


def _consume(future: asyncio.Future[Any]) -> None:
    # A late task may still fail after we gave up on it; retrieve the error so nobody logs it as lost.
    if not future.cancelled():
        future.exception()


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


def _validate(hook: str, value: Any) -> Any:
    if inspect.isawaitable(value):
        if inspect.iscoroutine(value):
            value.close()
        raise ResultError(f"{hook} returned an awaitable from a plain function; declare it `async def`")
    if hook in LIST_RESULT_TYPES:
        return check_list(hook, value)
    if hook == "execute_transaction":
        return check_transaction_result(value)
    return value


class Dispatcher:
    """Calls plugins one by one, concurrently, each under the hook's deadline from settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        stats: CallStats | None = None,
        guards: Sequence[CallGuard] = (),
        max_threads: int = 64,
    ) -> None:
        self.settings = settings
        self.stats = stats if stats is not None else CallStats()
        self.guards: list[CallGuard] = list(guards)
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="fulcrum-plugin")

    def deadline_ms(self, hook: str) -> int:
        """The configured deadline of ``hook`` in milliseconds."""
        value: int = getattr(self.settings.deadlines, hook)
        return value

    def close(self) -> None:
        """Stop accepting thread work; threads still running a late plugin are not waited for."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- public calls ------------------------------------------------------------------------------

    async def call_many(
        self, hook: str, calls: Sequence[tuple[LoadedPlugin, PluginContext]], **kwargs: Any
    ) -> Gathered:
        """Call ``hook`` on every plugin in ``calls`` with its own context; never raises for a plugin."""
        gathered = Gathered()
        deadline_ms = self.deadline_ms(hook)
        loop = asyncio.get_running_loop()
        started = loop.time()
        running: list[_Call] = []
        for plugin, ctx in calls:
            impl = plugin.impls.get(hook)
            if impl is None:
                continue
            refused = self._admit(plugin.id, hook)
            if refused is not None:
                gathered.degraded.append(
                    Degraded(plugin=plugin.id, hook=hook, reason="rejected", detail=refused)
                )
                continue
            running.append(self._start(loop, plugin, impl, ctx, kwargs))
        if running:
            await asyncio.wait([c.future for c in running], timeout=deadline_ms / 1000)
        for call in running:
            try:
                gathered.results[call.plugin.id] = self._settle(call, hook, started, deadline_ms)
            except PluginCallError as exc:
                gathered.degraded.append(
                    Degraded(plugin=exc.plugin, hook=hook, reason=exc.kind, detail=exc.detail)
                )
        return gathered

    async def call_one(
        self, plugin: LoadedPlugin, hook: str, ctx: PluginContext, *, deadline_ms: int, **kwargs: Any
    ) -> Any:
        """Call ``hook`` on one plugin and return its validated result.

        Raises :class:`PluginCallError` when it raises, misses ``deadline_ms`` or returns the wrong
        shape; a :class:`~fulcrum_sdk.errors.TransactionRefused` is re-raised as it is.
        """
        impl = plugin.impls.get(hook)
        if impl is None:
            raise PluginCallError(plugin.id, hook, "error", f"the plugin does not implement {hook}")
        refused = self._admit(plugin.id, hook)
        if refused is not None:
            raise PluginCallError(plugin.id, hook, "rejected", refused)
        loop = asyncio.get_running_loop()
        started = loop.time()
        call = self._start(loop, plugin, impl, ctx, kwargs)
        await asyncio.wait([call.future], timeout=deadline_ms / 1000)
        return self._settle(call, hook, started, deadline_ms)

    # --- mechanics ---------------------------------------------------------------------------------

    def _admit(self, plugin: str, hook: str) -> str | None:
        for i, guard in enumerate(self.guards):
            reason = guard.admit(plugin, hook)
            if reason is not None:
                for asked in self.guards[: i + 1]:
                    asked.record(plugin, hook, "rejected", 0.0)
                self.stats.record(plugin, hook, "rejected", 0.0, reason)
                return reason
        return None

    def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        plugin: LoadedPlugin,
        impl: HookCall,
        ctx: PluginContext,
        kwargs: dict[str, Any],
    ) -> _Call:
        args = {name: ctx if name == "ctx" else kwargs[name] for name in impl.argnames}
        future: asyncio.Future[Any]
        if impl.is_async:
            try:
                future = loop.create_task(impl.function(**args))
            except Exception as exc:  # raised before the first await
                future = loop.create_future()
                future.set_exception(exc)
        else:
            run = contextvars.copy_context().run
            future = loop.run_in_executor(self._executor, lambda: run(impl.function, **args))
        return _Call(plugin, future)

    def _settle(self, call: _Call, hook: str, started: float, deadline_ms: int) -> Any:
        """The call's validated result, or :class:`PluginCallError`; records the outcome either way."""
        future, pid = call.future, call.plugin.id
        if not future.done():
            future.cancel()  # a task gets CancelledError; a thread is abandoned, its result ignored
            future.add_done_callback(_consume)
            self._fail(pid, hook, "timeout", deadline_ms / 1000, f"no answer within {deadline_ms} ms")
        elapsed = max(0.0, (call.ended or future.get_loop().time()) - started)
        if future.cancelled():
            self._fail(pid, hook, "error", elapsed, "the call was cancelled")
        exc = future.exception()
        if isinstance(exc, TransactionRefused) and hook == "execute_transaction":
            self._record(pid, hook, "ok", elapsed)
            raise exc
        if exc is not None:
            if not isinstance(exc, Exception):
                raise exc  # KeyboardInterrupt, SystemExit: not the plugin's to swallow
            self._fail(pid, hook, "error", elapsed, _describe(exc))
        try:
            value = _validate(hook, future.result())
        except ResultError as err:
            self._fail(pid, hook, "invalid", elapsed, str(err)[:_DETAIL_MAX])
        self._record(pid, hook, "ok", elapsed)
        return value

    def _fail(self, plugin: str, hook: str, kind: DegradedReason, seconds: float, detail: str) -> NoReturn:
        self._record(plugin, hook, kind, seconds, detail)
        log.warning("plugin %r left out of %s (%s): %s", plugin, hook, kind, detail)
        raise PluginCallError(plugin, hook, kind, detail)

    def _record(self, plugin: str, hook: str, outcome: Outcome, seconds: float, detail: str = "") -> None:
        self.stats.record(plugin, hook, outcome, seconds, detail)
        for guard in self.guards:
            guard.record(plugin, hook, outcome, seconds)
