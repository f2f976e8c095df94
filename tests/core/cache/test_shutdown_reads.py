"""A stopping host lets the cache reads in flight land before it closes the database."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import msgspec
import pytest
from fulcrum_core.app import SHUTDOWN_READS_S, create_app
from fulcrum_core.data.consent_cache import LiveConsent
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.plugins import get_plugin_manager
from fulcrum_core.settings import Settings
from fulcrum_sdk.data import StaticDataProvider

from .test_refresh_ahead import held_select, wait_for

pytestmark = pytest.mark.anyio


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
        assert hooks.index(runtime.db.dispose) > drain > hooks.index(runtime.dispatcher.close)
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
