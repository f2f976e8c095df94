"""``sqlite_reads_on_loop``: storage and consent reads on the event loop (SQLite), in threads otherwise."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fulcrum_core.data.consent_cache import ConsentCache, LiveConsent
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.dispatch.dispatcher import Dispatcher
from fulcrum_core.plugins import get_plugin_manager
from fulcrum_core.settings import Deadlines, Settings, load_settings
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.errors import StorageUnavailable
from fulcrum_sdk.testing import PERSONAS

pytestmark = [pytest.mark.anyio, pytest.mark.both_loops]

NOW = datetime(2026, 1, 1, tzinfo=UTC)




def _watch_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the thread of every storage read (documents and counters), each still reading the database."""
    threads: list[int] = []
    doc, counters = SqlPluginStorage._read_doc, SqlPluginStorage._read_counters

    def read_doc(self: SqlPluginStorage, key: str) -> bytes | None:
        threads.append(threading.get_ident())
        return doc(self, key)

    def read_counters(self: SqlPluginStorage, keys: Any) -> dict[str, int]:
        threads.append(threading.get_ident())
        return counters(self, keys)

    monkeypatch.setattr(SqlPluginStorage, "_read_doc", read_doc)
    monkeypatch.setattr(SqlPluginStorage, "_read_counters", read_counters)
    return threads


async def _read_all(storage: SqlPluginStorage) -> tuple[Any, ...]:
    """A miss of each kind on both views, and the refresh-free hit after it."""
    return (
        await storage.aget("doc"),
        await storage.aget("absent"),
        await storage.acounters(["c", "never"]),
        await storage.fresh.aget("doc"),
        await storage.fresh.acounter("c"),
        await storage.aget("doc"),
    )


@pytest.mark.parametrize("cache_ms", [0, 1000])
async def test_on_sqlite_reads_run_on_the_loop_and_answer_as_the_thread_path_does(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch, cache_ms: int
) -> None:
    """Setting on: every read runs on the loop's thread; off: in worker threads; the values are the same."""
    on_loop = SqlPluginStorage(sqlite_db, "p", cache_ms=cache_ms, reads_on_loop=True)
    threaded = SqlPluginStorage(sqlite_db, "p", cache_ms=cache_ms, reads_on_loop=False)
    assert on_loop.reads_on_loop
    assert not threaded.reads_on_loop
    on_loop.put("doc", {"n": 1})
    on_loop.add("c", 7)
    threads = _watch_reads(monkeypatch)
    loop_thread = threading.get_ident()

    inline = await _read_all(on_loop)
    assert set(threads) == {loop_thread}
    threads.clear()
    in_threads = await _read_all(threaded)
    assert threads
    assert loop_thread not in threads
    assert inline == in_threads == ({"n": 1}, None, {"c": 7, "never": 0}, {"n": 1}, 7, {"n": 1})


async def test_a_refresh_ahead_on_the_loop_reads_on_the_loop_thread(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hit past its refresh point starts a re-read that runs on the loop's thread and lands in the cache."""
    now = [100.0]

    class Clock:
        def monotonic(self) -> float:
            return now[0]

    storage = SqlPluginStorage(sqlite_db, "p", cache_ms=1000, clock=Clock(), reads_on_loop=True)
    storage.put("doc", 1)
    SqlPluginStorage(sqlite_db, "p").put("doc", 2)  # another worker's write: our entry still says 1
    now[0] += 0.95  # past every key's refresh point, inside the TTL
    threads = _watch_reads(monkeypatch)
    assert await storage.aget("doc") == 1
    assert storage.cache is not None
    await asyncio.gather(*storage.cache.flights.pending())
    assert threads == [threading.get_ident()]
    assert await storage.aget("doc") == 2


@pytest.mark.parametrize("reads_on_loop", [True, False])
async def test_a_failed_read_raises_the_same_error_on_either_path(
    sqlite_db: Database, reads_on_loop: bool
) -> None:
    """A database error during a read is ``StorageUnavailable`` on the loop as in a thread."""
    storage = SqlPluginStorage(sqlite_db, "p", cache_ms=1000, reads_on_loop=reads_on_loop)
    with sqlite_db.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE plugin_documents")
        conn.exec_driver_sql("DROP TABLE plugin_counters")
    with pytest.raises(StorageUnavailable):
        await storage.aget("doc")
    with pytest.raises(StorageUnavailable):
        await storage.fresh.acounters(["c"])


async def test_on_postgresql_reads_always_run_in_worker_threads(
    postgres_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL ignores the setting: a read waits on the network, so it never blocks the loop."""
    storage = SqlPluginStorage(postgres_db, "p", cache_ms=1000, reads_on_loop=True)
    assert not storage.reads_on_loop
    storage.put("doc", {"n": 1})
    threads = _watch_reads(monkeypatch)
    assert await storage.aget("doc") == {"n": 1}
    assert await storage.fresh.acounter("c") == 0
    assert threads
    assert threading.get_ident() not in threads


@pytest.mark.parametrize("ttl_ms", [0, 1000])
@pytest.mark.parametrize("reads_on_loop", [True, False])
async def test_consent_reads_run_where_the_setting_says(ttl_ms: int, reads_on_loop: bool) -> None:
    """A consent miss (cache on or off) and a refresh read on the loop's thread with the setting, else not."""
    now = [100.0]
    cache = ConsentCache(ttl_ms, clock=lambda: now[0], reads_on_loop=reads_on_loop)
    threads: list[int] = []
    consent = LiveConsent("partner", frozenset({"profile:basic"}), NOW + timedelta(days=1))

    def read() -> list[LiveConsent]:
        threads.append(threading.get_ident())
        return [consent]

    assert await cache.load("c", NOW, read) == {"partner": frozenset({"profile:basic"})}
    if ttl_ms:
        now[0] += 0.95  # past the refresh point
        assert cache.refresh("c", NOW, read)
        flight = cache.in_flight("c")
        assert flight is not None
        await flight
    assert len(threads) == (2 if ttl_ms else 1)
    assert (set(threads) == {threading.get_ident()}) is reads_on_loop
    assert (threading.get_ident() in threads) is reads_on_loop


async def test_a_failed_consent_read_on_the_loop_raises_and_stores_nothing() -> None:
    """A read that fails on the loop raises to its caller, as from a thread, and caches nothing."""
    cache = ConsentCache(1000, reads_on_loop=True)

    def down() -> list[LiveConsent]:
        raise ConnectionError("database away")

    with pytest.raises(ConnectionError):
        await cache.load("c", NOW, down)
    assert len(cache) == 0


def _factory(settings: Settings, database_url: str) -> ContextFactory:
    settings = msgspec.structs.replace(settings, database_url=database_url)
    plugins = get_plugin_manager(settings, load_entry_points=False)
    db = Database(database_url)
    provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
    return ContextFactory(settings=settings, db=db, provider=provider, plugins=plugins)


@pytest.mark.parametrize("on", [True, False])
def test_the_host_reads_on_the_loop_on_sqlite_as_configured(
    settings: Settings, sqlite_url: str, on: bool
) -> None:
    """The host's plugin storage and consent cache follow ``sqlite_reads_on_loop`` on SQLite."""
    factory = _factory(msgspec.structs.replace(settings, sqlite_reads_on_loop=on), sqlite_url)
    storage = factory.storage("p")
    assert isinstance(storage, SqlPluginStorage)
    assert storage.reads_on_loop is on
    assert factory.consent_cache.reads_on_loop is on
    factory.db.dispose()


def test_the_host_reads_in_threads_on_postgresql(settings: Settings, postgres_url: str) -> None:
    """On PostgreSQL the host's storage and consent reads use threads even with the setting on."""
    factory = _factory(msgspec.structs.replace(settings, sqlite_reads_on_loop=True), postgres_url)
    storage = factory.storage("p")
    assert isinstance(storage, SqlPluginStorage)
    assert not storage.reads_on_loop
    assert not factory.consent_cache.reads_on_loop
    factory.db.dispose()


def test_the_setting_defaults_on_and_comes_from_the_environment_or_the_file(tmp_path: Path) -> None:
    """Default true; ``FULCRUM_SQLITE_READS_ON_LOOP`` and the TOML key of the same name turn it off."""
    assert load_settings(environ={}).sqlite_reads_on_loop is True
    assert load_settings(environ={"FULCRUM_SQLITE_READS_ON_LOOP": "false"}).sqlite_reads_on_loop is False
    config = tmp_path / "fulcrum.toml"
    config.write_text("sqlite_reads_on_loop = false\n")
    assert load_settings(config_file=config, environ={}).sqlite_reads_on_loop is False


async def test_a_plugin_looping_over_reads_on_the_loop_is_cut_off_at_its_deadline(
    settings: Settings, sqlite_db: Database, kit: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 storage reads of 2 ms each on the loop in one call: cancelled at an await near its 50 ms
    deadline, not left to block the loop for the 400 ms they would take."""
    storage = SqlPluginStorage(sqlite_db, "looper", reads_on_loop=True)
    doc = SqlPluginStorage._read_doc
    done: list[str] = []

    def slow(self: SqlPluginStorage, key: str) -> bytes | None:
        time.sleep(0.002)  # a slow local read, blocking the loop as a real one does
        done.append(key)
        return doc(self, key)

    monkeypatch.setattr(SqlPluginStorage, "_read_doc", slow)

    async def search(ctx: Any, query: str) -> Any:
        for n in range(200):
            await storage.aget(f"k{n}")
        return []

    fast = msgspec.structs.replace(settings, deadlines=Deadlines(search=50))
    looper = kit.plugin("looper", search=search)
    loaded = get_plugin_manager(fast, extra_plugins=[looper], load_entry_points=False)
    [plugin] = loaded.loaded.values()
    dispatcher = Dispatcher(fast)
    started = time.monotonic()
    gathered = await dispatcher.call_many("search", [(plugin, kit.context(plugin))], query="q")
    took = time.monotonic() - started
    dispatcher.close()
    assert [(d.plugin, d.reason) for d in gathered.degraded] == [("looper", "timeout")]
    assert took < 0.3
    await asyncio.sleep(0.05)  # a read that went on after the deadline would show here
    assert 0 < len(done) < 150

