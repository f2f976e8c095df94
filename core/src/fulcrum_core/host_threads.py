"""The host's own worker threads, apart from the event loop's default executor, which plugins share.

``asyncio.to_thread`` runs in the event loop's default executor: ``min(32, cpus + 4)`` threads (six on a
two-core host) that any ``async def`` plugin may use too, the usual way to call a blocking client. A
call that hangs there keeps its thread after the host gave up on the plugin (the task obeys the
cancel, the thread cannot), so a handful of such calls fill the executor for good. The host's own
thread work that used to go there (the transaction journal, the metrics merge) would then wait for
the partner's hung calls, for every customer. :func:`to_thread` runs it among threads of the host's own
instead (anyio's worker threads under a limiter of the host's, one per event loop).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

__all__ = ["HOST_THREADS", "limiter", "to_thread"]

HOST_THREADS: Final = 32
"""The host's journal and metrics threads at once per event loop (the default executor's most)."""

_T = TypeVar("_T")
_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("fulcrum_host_threads")


def limiter() -> anyio.CapacityLimiter:
    """The running event loop's limiter of the host's threads (made on first use)."""
    try:
        return _LIMITER.get()
    except LookupError:
        made = anyio.CapacityLimiter(HOST_THREADS)
        _LIMITER.set(made)
        return made


async def to_thread(function: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """What ``asyncio.to_thread`` does (the context variables follow the call, and a cancelled caller
    stops waiting while the thread runs on), in one of the host's own threads."""
    call = functools.partial(function, **kwargs) if kwargs else function
    return await anyio.to_thread.run_sync(call, *args, abandon_on_cancel=True, limiter=limiter())
