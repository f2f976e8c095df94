"""The host's own blocking work (``host_threads``): daemon threads, so a call hung there never keeps a
stopping worker alive, with anyio's semantics for the caller's context and for cancellation."""

from __future__ import annotations

import contextvars
import functools
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


def test_the_data_pool_holds_every_place_of_the_reads_that_bound_themselves() -> None:
    """The bounds the reads keep are the sizes the pool reserves for them (tied here, so changing one
    without the other fails)."""
    from fulcrum_core.api import frequency_caps
    from fulcrum_core.data import consent_cache, storage
    from fulcrum_core.dispatch import context

    bounds = (
        storage._READ_PLACES, consent_cache.DEFAULT_MAX_READS, context._BANK_READS, context._BANK_READS,
        frequency_caps._THREADS,
    )
    assert sum(bounds) == host_threads.BOUNDED_DATA_THREADS
    assert host_threads.DATA_THREADS >= 40 + host_threads.BOUNDED_DATA_THREADS


@pytest.mark.anyio
@pytest.mark.both_loops
async def test_reads_hung_at_their_bounds_leave_threads_for_the_other_host_calls() -> None:
    """Plugin storage reads and consent reads hung in the database hold every place of their bounds
    (their deadlines abandoned them, their threads run on): the token endpoint's or the readiness
    ping's call still gets a thread at once. A pool of anyio's 40 had none left after 32 + 16."""
    from fulcrum_core.data import storage
    from fulcrum_core.data.consent_cache import ConsentCache

    release = threading.Event()
    held = threading.Semaphore(0)

    def hung(*_: object) -> dict[object, object]:
        held.release()
        release.wait(30)
        return {}

    consents = ConsentCache(1000)
    try:
        async with anyio.create_task_group() as reads:
            for _ in range(storage._READ_PLACES):
                reads.start_soon(functools.partial(
                    storage._in_thread, storage._bounded_read, hung, (), abandon=True))
            for _ in range(consents.max_reads):
                reads.start_soon(functools.partial(
                    host_threads.run_sync, consents._bounded, hung, abandon_on_cancel=True))
            for _ in range(storage._READ_PLACES + consents.max_reads):  # each holds a place, in a thread
                assert await anyio.to_thread.run_sync(held.acquire, True, 10)
            reads.cancel_scope.cancel()  # their deadlines: abandoned, their threads run on
        with anyio.fail_after(5):
            assert await host_threads.run_sync(lambda: "ready") == "ready"
    finally:
        release.set()


@pytest.mark.anyio
@pytest.mark.both_loops
async def test_journal_calls_hung_in_every_thread_leave_the_metrics_scrape_its_own() -> None:
    """Every journal thread hung in the database (the calls abandoned, their threads running on): the
    merge a ``/metrics`` scrape runs still gets a thread at once, when an operator needs it most."""
    release = threading.Event()
    held = threading.Semaphore(0)

    def hung() -> None:
        held.release()
        release.wait(30)

    try:
        async with anyio.create_task_group() as calls:
            for _ in range(host_threads.HOST_THREADS):
                calls.start_soon(host_threads.to_thread, hung)
            for _ in range(host_threads.HOST_THREADS):
                assert await anyio.to_thread.run_sync(held.acquire, True, 10)
            calls.cancel_scope.cancel()
        with anyio.fail_after(5):
            assert await host_threads.for_metrics(lambda: b"fulcrum_up 1") == b"fulcrum_up 1"
    finally:
        release.set()
