"""The host's own worker threads: daemons, apart from the event loop's default executor, which plugins share.

``asyncio.to_thread`` runs in the event loop's default executor, which any ``async def`` plugin may use
too, the usual way to call a blocking client. A call that hangs there keeps its thread after the host
gave up on the plugin (the task obeys the cancel, the thread cannot). asyncio's own executor has
``min(32, cpus + 4)`` threads (six on a two-core host), so a handful of such calls filled it for good;
the host's (``app.py``) lends their threads and gives each plugin a share, but it is still the plugins'.
The host's own thread work that used to go there (the transaction journal, the metrics merge) would then
wait for the partner's hung calls, for every customer. :func:`to_thread` runs it among threads of the
host's own instead; :func:`run_sync` runs the rest of the host's blocking work (plugin storage,
consents, customer records, frequency caps, registry reads, the readiness ping, OAuth), which used
anyio's worker threads.

Both run in :class:`~fulcrum_core.dispatch.daemon_threads.DaemonThreadPool` threads (one pool of each kind
per event loop): anyio's worker threads are not daemons, so one call hung in the database (no reply, a
lock never released) kept a stopping worker alive after its server stopped, since the interpreter joins
every thread that is not a daemon as it exits. A hung call now ends with the process. Unlike anyio's
limiter, which took back an abandoned call's place while its thread ran on (and then started another
thread), a pool's thread hung in an abandoned call keeps its place until it returns: each pool starts at
most its size of threads, and a caller finding them all busy waits in its queue (until its deadline).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import Any, Final, TypeVar

import anyio
from anyio.lowlevel import RunVar

from fulcrum_core.dispatch.daemon_threads import DaemonThreadPool

__all__ = [
    "BOUNDED_DATA_THREADS", "DATA_POOL", "DATA_THREADS", "HOST_THREADS", "METRICS_THREADS", "for_metrics",
    "run_sync", "to_thread",
]

HOST_THREADS: Final = 32
"""The host's journal threads at once per event loop (as many as asyncio's default executor has at most)."""

METRICS_THREADS: Final = 2
"""The threads that merge the workers' shared metrics for a scrape, per event loop: apart from the
journal's, so a database that hangs every journal call leaves ``/metrics`` answering, when it is
needed most."""

BOUNDED_DATA_THREADS: Final = 32 + 16 + 16 + 16 + 16
"""The places of the host's reads that bound themselves, hung ones included, each acquired without
waiting inside its thread: plugin storage reads (32, ``fulcrum_core.data.storage``), consent reads
(16, ``fulcrum_core.data.consent_cache``), the bank's customer records and profiles (16 each,
``fulcrum_core.dispatch.context``) and the impression store (16, ``fulcrum_core.api.frequency_caps``).
Each bound was set for anyio's threads, where an abandoned read kept its thread but gave back its
limiter's place; in a pool a hung read keeps its pool thread, so the pool holds all of them on top of
the rest."""

DATA_THREADS: Final = 40 + BOUNDED_DATA_THREADS
"""The host's other blocking calls at once per event loop: anyio's default limit (40, which they had)
for the calls that bound nothing themselves (OAuth, storage writes, the readiness ping, registry
reads), beside every place of those that do (:data:`BOUNDED_DATA_THREADS`). Smaller, a database or bank
that hangs the bounded reads (32 storage and 16 consent reads fill 40) left no thread for the token
endpoint or the readiness ping, which those bounds were meant to keep apart. Threads start as needed."""

DATA_POOL: Final = "fulcrum-data"
"""The name of the data threads (:func:`run_sync`), which their threads' names begin with."""

_T = TypeVar("_T")
_HOST: RunVar[DaemonThreadPool] = RunVar("fulcrum_host_threads")
_DATA: RunVar[DaemonThreadPool] = RunVar("fulcrum_data_threads")
_METRICS: RunVar[DaemonThreadPool] = RunVar("fulcrum_metrics_threads")


def _pool(var: RunVar[DaemonThreadPool], size: int, name: str) -> DaemonThreadPool:
    """The running event loop's pool kept in ``var`` (made on first use; its idle threads end when the
    loop is gone)."""
    try:
        return var.get()
    except LookupError:
        made = DaemonThreadPool(size, name)
        var.set(made)
        return made


async def _run(pool: DaemonThreadPool, call: Callable[[], _T], *, abandon_on_cancel: bool) -> _T:
    context = contextvars.copy_context()
    # As anyio's: a cancel scope of anyio's (a deadline around the call) waits for the thread unless the
    # caller may abandon it; a task cancelled outright stops waiting either way, the thread runs on.
    with anyio.CancelScope(shield=not abandon_on_cancel):
        return await asyncio.get_running_loop().run_in_executor(pool, context.run, call)
    raise AssertionError("unreachable: a scope nothing cancels swallows no cancellation")


async def to_thread(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """What ``asyncio.to_thread`` does (the context variables follow the call, and a cancelled caller
    stops waiting while the thread runs on), in one of the host's own threads (the journal)."""
    call = functools.partial(function, *args, **kwargs)
    return await _run(_pool(_HOST, HOST_THREADS, "fulcrum-host"), call, abandon_on_cancel=True)


async def for_metrics(function: Callable[[], _T]) -> _T:
    """:func:`to_thread` of ``function`` in the metrics' own threads (:data:`METRICS_THREADS`)."""
    return await _run(_pool(_METRICS, METRICS_THREADS, "fulcrum-metrics"), function, abandon_on_cancel=True)


async def run_sync(function: Callable[..., _T], *args: Any, abandon_on_cancel: bool = False) -> _T:
    """What ``anyio.to_thread.run_sync`` does (the context variables follow the call; an anyio cancel
    scope waits for the thread unless ``abandon_on_cancel``), in one of the host's daemon threads."""
    call = functools.partial(function, *args)
    return await _run(_pool(_DATA, DATA_THREADS, DATA_POOL), call, abandon_on_cancel=abandon_on_cancel)
