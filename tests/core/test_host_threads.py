"""The host's own blocking work (``host_threads``): daemon threads, so a call hung there never keeps a
stopping worker alive, with anyio's semantics for the caller's context and for cancellation."""

from __future__ import annotations

import contextvars
import threading
import time

import anyio
import pytest
from fulcrum_core import host_threads

from tests.core.test_dispatch_daemon_threads import exits

on_both_loops = [pytest.mark.anyio, pytest.mark.both_loops]

_REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="")


def _where() -> tuple[str, bool]:
    return _REQUEST.get(), threading.current_thread().daemon


@pytest.mark.anyio
@pytest.mark.both_loops
async def test_host_calls_run_in_daemon_threads_with_the_callers_context() -> None:
    """The journal's threads and the rest of the host's both carry the caller's context variables, and
    are daemons."""
    _REQUEST.set("customer-1")
    assert await host_threads.to_thread(_where) == ("customer-1", True)
    assert await host_threads.run_sync(_where) == ("customer-1", True)


@pytest.mark.anyio
@pytest.mark.both_loops
async def test_a_deadline_waits_for_a_host_call_unless_it_may_be_abandoned() -> None:
    """As with anyio's worker threads: under a deadline (an anyio cancel scope) a call that may not be
    abandoned (a storage write) is waited for and gives its result; one that may is left running."""
    with anyio.move_on_after(0.01) as scope:
        assert await host_threads.run_sync(lambda: time.sleep(0.1) or _where()) == ("", True)
    assert not scope.cancelled_caught

    release = threading.Event()
    try:
        with anyio.move_on_after(0.01) as scope:
            await host_threads.run_sync(release.wait, abandon_on_cancel=True)
        assert scope.cancelled_caught
    finally:
        release.set()


_HUNG_HOST_CALLS = """
import asyncio, threading
from fulcrum_core import host_threads
from fulcrum_core.data import storage

async def main():
    hung = threading.Event().wait  # a database call that never returns
    for call in (
        host_threads.to_thread(hung),  # the transaction journal, the metrics merge
        storage._in_thread(hung),  # a plugin's storage write, never abandoned by its hook's deadline
        host_threads.run_sync(hung, abandon_on_cancel=True),  # a consent or customer record read
    ):
        try:
            await asyncio.wait_for(call, 0.1)
        except TimeoutError:
            pass

asyncio.run(main())
"""


def test_a_worker_with_a_host_call_hung_in_the_database_still_exits() -> None:
    """The host's blocking calls ran in anyio's worker threads, which are not daemons: one hung in the
    database (no reply, a lock never released) kept a stopping worker alive past the shutdown wait, as
    the interpreter joins every thread that is not a daemon when it exits."""
    exits(_HUNG_HOST_CALLS)
