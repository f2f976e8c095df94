"""A stopping host lets the cache reads in flight land before it closes the database."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import msgspec
import pytest
from fulcrum_core.app import SHUTDOWN_READS_S, _drain_reads, create_app
from fulcrum_core.data.consent_cache import LiveConsent
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.plugins import get_plugin_manager
from fulcrum_core.settings import Settings
from fulcrum_sdk.data import StaticDataProvider

from .test_refresh_ahead import held_select, wait_for

pytestmark = [pytest.mark.anyio, pytest.mark.both_loops]


def _factory(settings: Settings, db: Database) -> ContextFactory:
    """The host's context factory, with storage reads cached and run in worker threads."""
    settings = msgspec.structs.replace(settings, sqlite_reads_on_loop=False, storage_cache_ms=1000)
    plugins = get_plugin_manager(settings, load_entry_points=False)
    return ContextFactory(settings=settings, db=db, provider=StaticDataProvider({}), plugins=plugins)


async def test_draining_waits_for_a_read_in_flight(settings: Settings, db: Database) -> None:
    """A read held in the database: the drain waits for it, and returns once it has landed."""
    factory = _factory(settings, db)
    storage = factory.storage("p")
    SqlPluginStorage(db, "p").add("n", 3)  # another worker's write: nothing in this worker's cache
    assert factory.pending_reads() == []
    with held_select(db) as (selected, release):
        read = asyncio.ensure_future(storage.acounter("n"))
        await wait_for(selected)
        assert len(factory.pending_reads()) == 1
        drained = asyncio.ensure_future(factory.drain_reads(10))
        await asyncio.sleep(0.05)
        assert not drained.done()  # still waiting for the held read
        release.set()
        assert await drained == 0
    assert await read == 3
    assert factory.pending_reads() == []


async def test_draining_gives_up_after_its_timeout(settings: Settings, db: Database) -> None:
    """A read that does not land in time is counted, not waited for."""
    factory = _factory(settings, db)
    storage = factory.storage("p")
    with held_select(db) as (selected, release):
        read = asyncio.ensure_future(storage.acounter("n"))
        await wait_for(selected)
        assert await factory.drain_reads(0.05) == 1
        release.set()
        assert await read == 0


def test_the_host_drains_before_it_closes_the_database(settings: Settings) -> None:
    """In the app's shutdown hooks the drain comes after the plugin threads stop taking work and before
    the database is disposed."""
    app = create_app(settings)
    runtime = app.state.runtime
    try:
        hooks = list(app.on_shutdown)
        names = [getattr(hook, "__qualname__", "") for hook in hooks]
        drain = next(i for i, name in enumerate(names) if "_drain_reads" in name)
        threads = next(i for i, name in enumerate(names) if name == "_PluginThreads.stop")
        assert hooks.index(runtime.db.dispose) > drain > threads
        assert SHUTDOWN_READS_S > 0
    finally:
        runtime.dispatcher.close()
        runtime.db.dispose()


async def test_a_consent_read_in_flight_is_waited_for_too(settings: Settings, db: Database) -> None:
    """The consent cache's background re-read counts as a read in flight until it lands."""
    factory = _factory(settings, db)
    started, release = threading.Event(), threading.Event()

    def read() -> list[LiveConsent]:
        started.set()
        release.wait(10)
        return []

    assert factory.consent_cache.refresh("c-1", datetime.now(UTC), read)
    await wait_for(started)
    assert len(factory.pending_reads()) == 1
    drained = asyncio.ensure_future(factory.drain_reads(10))
    await asyncio.sleep(0.05)
    assert not drained.done()
    release.set()
    assert await drained == 0
    assert factory.pending_reads() == []


async def test_reads_of_another_loop_are_not_waited_for(settings: Settings, db: Database) -> None:
    """A read still pending on another event loop (another worker thread's, or one closed without
    ending its tasks) would never wake this loop: it is left alone, and the drain returns at once."""
    factory = _factory(settings, db)
    other = asyncio.new_event_loop()
    stranded = other.create_task(asyncio.sleep(3600))
    factory.consent_cache._flights["c-1"] = (stranded, 0)  # as a refresh started on that loop leaves it
    try:
        started = asyncio.get_running_loop().time()
        assert await factory.drain_reads(5) == 0
        assert asyncio.get_running_loop().time() - started < 1
    finally:
        del factory.consent_cache._flights["c-1"]

        def finish() -> None:  # that loop's own thread ends its task, as it would have
            stranded.cancel()
            other.run_until_complete(asyncio.wait([stranded]))
            other.close()

        await asyncio.to_thread(finish)


async def test_reads_started_while_draining_are_waited_for_too(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read in flight lands and, meanwhile, a late request started another: the drain waits for both."""
    factory = _factory(settings, db)
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    rounds = iter([[first], [second], []])
    monkeypatch.setattr(factory, "pending_reads", lambda: next(rounds))
    drained = asyncio.ensure_future(factory.drain_reads(10))
    await asyncio.sleep(0.02)
    first.set_result(None)
    await asyncio.sleep(0.02)
    assert not drained.done()  # the second read is still out
    second.set_result(None)
    assert await drained == 0


async def test_the_shutdown_hook_says_how_many_reads_it_left(caplog: pytest.LogCaptureFixture) -> None:
    """Reads still out after the wait are logged, and shutdown goes on."""

    class _Contexts:
        async def drain_reads(self, timeout_s: float) -> int:
            assert timeout_s == SHUTDOWN_READS_S
            return 2

    hook = _drain_reads(SimpleNamespace(contexts=_Contexts()))  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="fulcrum_core.app"):
        await hook()
    assert "2 cache read(s) still in flight" in caplog.text
