"""Refresh-ahead and single-flight for the storage read cache and the consent cache.

Time is a virtual clock; a read is held in the database (an ``after_cursor_execute`` listener, or a
wrapped ``ConsentStore._live``) with a ``threading.Event`` instead of sleeping. "Another worker" is a
second ``SqlPluginStorage`` (or a ``ConsentStore`` whose writes reach no attached cache) on the same
database.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import msgspec
import pytest
from fulcrum_core.api.deps import plugin_calls
from fulcrum_core.data.consent_cache import REFRESH_AFTER as CONSENT_REFRESH_AFTER
from fulcrum_core.data.consent_cache import ConsentCache, LiveConsent, attach
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import REFRESH_AFTER, SqlPluginStorage
from fulcrum_core.dispatch.clock import VirtualClock
from fulcrum_core.dispatch.context import ContextFactory
from fulcrum_core.plugins import PluginSet, get_plugin_manager
from fulcrum_core.settings import Settings
from fulcrum_sdk.data import StaticDataProvider
from fulcrum_sdk.errors import StorageUnavailable
from fulcrum_sdk.testing import PERSONAS
from sqlalchemy import event

from .conftest import statements

pytestmark = [pytest.mark.anyio, pytest.mark.both_loops]

TTL_MS = 1000
TTL = TTL_MS / 1000
IN_WINDOW = TTL * (REFRESH_AFTER[1] + 1) / 2  # past every key's refresh point, before the TTL








@contextmanager
def held_select(db: Database) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Hold the next SELECT after it has read (before the cache is filled) until ``release`` is set.

    Yields ``(selected, release)``; only the first SELECT in the block is held.
    """
    selected, release = threading.Event(), threading.Event()
    held: list[int] = []

    def hold(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not held and statement.lstrip().upper().startswith("SELECT"):
            held.append(threading.get_ident())
            selected.set()
            release.wait(10)

    event.listen(db.engine, "after_cursor_execute", hold)
    try:
        yield selected, release
    finally:
        release.set()
        event.remove(db.engine, "after_cursor_execute", hold)


async def wait_for(flag: threading.Event) -> None:
    """Wait for a worker thread to set ``flag`` without blocking the loop."""
    assert await anyio.to_thread.run_sync(flag.wait, 10)


async def landed(storage: SqlPluginStorage) -> None:
    """Wait until every read the storage's cache has in flight has landed."""
    assert storage.cache is not None
    pending = storage.cache.flights.pending()
    await asyncio.gather(*pending, return_exceptions=True)


def hit(coro: Any) -> Any:
    """Run ``coro``'s first send on the running loop; it must finish there (a cache hit)."""
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    return stop.value.value


# --- storage: refresh-ahead ----------------------------------------------------------------------


async def test_a_hit_in_the_refresh_window_is_served_and_starts_exactly_one_refresh(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage, clock: VirtualClock
) -> None:
    """Past the refresh point a read is still a hit; it and the reads after it start one re-read."""
    other.add("n", 1)
    assert await storage.acounter("n") == 1
    other.add("n", 1)  # the database now says 2; the cache still 1
    clock.advance(IN_WINDOW)
    assert storage.cache is not None
    with statements(db, only="SELECT") as seen:
        assert hit(storage.acounter("n")) == 1
        assert hit(storage.acounters(["n"])) == {"n": 1}
        assert len(storage.cache.flights.pending()) == 1
        await landed(storage)
    assert len(seen) == 1
    assert hit(storage.acounter("n")) == 2  # the refresh replaced the entry...
    assert storage.cache.flights.pending() == []  # ...and renewed it: no refresh is due now


async def test_one_batch_refreshes_its_due_keys_rereads_its_expired_ones_and_serves_the_rest(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage, clock: VirtualClock
) -> None:
    """``acounters`` over entries of three ages: the expired one is read again (the call suspends), the
    one past its refresh point is served and re-read in the background, the young one is just served."""
    assert await storage.acounters(["gone"]) == {"gone": 0}
    clock.advance(0.1 * TTL)
    assert await storage.acounters(["due"]) == {"due": 0}
    clock.advance(0.5 * TTL)
    assert await storage.acounters(["young"]) == {"young": 0}
    for key in ("gone", "due", "young"):
        other.add(key, 1)
    clock.advance(0.45 * TTL)  # 1.05 TTL: gone expired; due past its point (≤ 1.0); young's is ≥ 1.2
    with statements(db, only="SELECT") as seen:
        got = await storage.acounters(["young", "due", "gone"])
        await landed(storage)
    assert (got, list(got)) == ({"young": 0, "due": 0, "gone": 1}, ["young", "due", "gone"])
    assert len(seen) == 2  # gone's miss and due's refresh, each alone
    assert hit(storage.acounters(["young", "due", "gone"])) == {"young": 0, "due": 1, "gone": 1}


async def test_a_hit_before_the_refresh_point_starts_nothing(
    storage: SqlPluginStorage, other: SqlPluginStorage, clock: VirtualClock
) -> None:
    """A young entry is simply served."""
    other.put("doc", {"v": 1})
    assert await storage.aget("doc") == {"v": 1}
    clock.advance(TTL * REFRESH_AFTER[0] * 0.99)
    assert hit(storage.aget("doc")) == {"v": 1}
    assert storage.cache is not None
    assert storage.cache.flights.pending() == []


async def test_a_refreshed_entry_lives_a_full_ttl_from_its_refresh(
    storage: SqlPluginStorage, other: SqlPluginStorage, clock: VirtualClock
) -> None:
    """The refreshed document is served past the old entry's TTL, and not past its own."""
    other.put("doc", {"v": 1})
    assert await storage.aget("doc") == {"v": 1}
    other.put("doc", {"v": 2})
    clock.advance(IN_WINDOW)
    assert hit(storage.aget("doc")) == {"v": 1}
    await landed(storage)
    clock.advance(TTL - IN_WINDOW + 0.01)  # the first entry's TTL has passed
    other.put("doc", {"v": 3})
    assert hit(storage.aget("doc")) == {"v": 2}
    await landed(storage)  # that hit was in the new entry's window too: it refreshed to 3
    clock.advance(TTL)
    assert await storage.aget("doc") == {"v": 3}


async def stale_in_window(storage: SqlPluginStorage, other: SqlPluginStorage, clock: VirtualClock) -> None:
    """This worker caches counter ``n`` = 1, another makes it 2, and the entry enters its refresh window."""
    other.add("n", 1)
    assert await storage.acounter("n") == 1
    other.add("n", 1)
    clock.advance(IN_WINDOW)


async def test_nothing_past_the_ttl_is_served_while_a_refresh_is_in_flight(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage, clock: VirtualClock
) -> None:
    """The TTL passes while the refresh is held: the next read misses, joins it, and gets its newer value."""
    await stale_in_window(storage, other, clock)
    with statements(db, only="SELECT") as seen, held_select(db) as (selected, release):
        assert hit(storage.acounter("n")) == 1
        await wait_for(selected)
        clock.advance(TTL)
        waiting = asyncio.ensure_future(storage.acounter("n"))
        await asyncio.sleep(0)  # let it look up (a loop turn, not a wait for time)
        assert not waiting.done()
        release.set()
        assert await waiting == 2
    assert len(seen) == 1  # the miss shared the refresh's read


async def test_a_write_during_a_refresh_wins(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage, clock: VirtualClock
) -> None:
    """The refresh read 2 before this worker wrote 12: the write's value stays in the cache."""
    await stale_in_window(storage, other, clock)
    with held_select(db) as (selected, release):
        assert hit(storage.acounter("n")) == 1
        await wait_for(selected)  # the refresh has read 2 and not yet filled the cache
        assert await storage.aadd("n", 10) == 12
        release.set()
        await landed(storage)
    assert hit(storage.acounter("n")) == 12
    assert other.counter("n") == 12


async def test_a_failed_refresh_keeps_the_entry_until_its_ttl_and_is_logged(
    storage: SqlPluginStorage,
    other: SqlPluginStorage,
    clock: VirtualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refresh that fails changes nothing cached, is logged once, and is not retried for that entry."""
    other.add("n", 1)
    assert await storage.acounter("n") == 1
    clock.advance(IN_WINDOW)
    calls: list[Sequence[str]] = []

    def down(self: SqlPluginStorage, keys: Sequence[str]) -> dict[str, int]:
        calls.append(keys)
        raise StorageUnavailable("p")

    monkeypatch.setattr(SqlPluginStorage, "_read_counters", down)
    with caplog.at_level(logging.WARNING, logger="fulcrum.storage"):
        assert hit(storage.acounter("n")) == 1
        await landed(storage)
        assert hit(storage.acounter("n")) == 1  # still served, and no second refresh started
        assert storage.cache is not None
        assert storage.cache.flights.pending() == []
    assert len(calls) == 1
    assert [r.levelno for r in caplog.records if "refreshing" in r.getMessage()] == [logging.WARNING]
    clock.advance(TTL - IN_WINDOW)
    with pytest.raises(StorageUnavailable):  # past the TTL: a miss, which reports the failure
        await storage.acounter("n")


async def test_sync_reads_never_start_a_refresh(
    storage: SqlPluginStorage, other: SqlPluginStorage, clock: VirtualClock
) -> None:
    """Plain ``get``/``counter`` in the refresh window are hits with no background work."""
    other.add("n", 1)
    assert storage.counter("n") == 1
    clock.advance(IN_WINDOW)
    assert storage.counter("n") == 1
    assert storage.cache is not None
    assert storage.cache.flights.pending() == []


# --- storage: single-flight ----------------------------------------------------------------------


async def test_concurrent_misses_of_one_key_share_one_read(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage
) -> None:
    """Twenty concurrent misses of a counter, then of a document: one SELECT each."""
    other.add("n", 7)
    other.put("doc", {"v": 1})
    with statements(db, only="SELECT") as seen:
        assert await asyncio.gather(*(storage.acounter("n") for _ in range(20))) == [7] * 20
    assert len(seen) == 1
    with statements(db, only="SELECT") as seen:
        docs = await asyncio.gather(*(storage.aget("doc") for _ in range(20)))
    assert docs == [{"v": 1}] * 20
    assert len(seen) == 1
    assert docs[0] is not docs[1]  # still a new object per caller


async def test_batched_misses_share_per_key_reads(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage
) -> None:
    """``acounters`` joins reads already in flight key by key, and reads only the keys nobody is reading."""
    other.add("a", 1)
    other.add("c", 3)
    with statements(db, only="SELECT") as seen:
        results = await asyncio.gather(
            *(storage.acounters(["a", "b"]) for _ in range(10)), storage.acounters(["b", "c", "c"])
        )
    assert results == [{"a": 1, "b": 0}] * 10 + [{"b": 0, "c": 3}]
    assert len(seen) == 2  # (a, b) once, then c alone


async def test_the_fresh_view_never_shares_a_read(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage
) -> None:
    """Transactions need a read that began after they asked: five fresh reads, five SELECTs."""
    other.add("n", 1)
    with statements(db, only="SELECT") as seen:
        assert await asyncio.gather(*(storage.fresh.acounter("n") for _ in range(5))) == [1] * 5
    assert len(seen) == 5


async def test_a_shared_miss_failure_reaches_every_caller_and_caches_nothing(
    storage: SqlPluginStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed shared read raises in each caller; the next read goes to the database again."""
    calls: list[str] = []

    def down(self: SqlPluginStorage, key: str) -> bytes | None:
        calls.append(key)
        raise StorageUnavailable("p")

    monkeypatch.setattr(SqlPluginStorage, "_read_doc", down)
    results = await asyncio.gather(*(storage.aget("doc") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, StorageUnavailable) for r in results)
    assert calls == ["doc"]
    monkeypatch.undo()
    assert await storage.aget("doc") is None
    assert storage.cache is not None
    assert len(storage.cache) == 1


async def test_a_cancelled_caller_leaves_the_shared_read_to_the_others(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage
) -> None:
    """Cancelling one waiter (its hook's deadline) neither cancels the read nor fails the other waiters."""
    other.add("n", 4)
    with held_select(db) as (selected, release):
        first = asyncio.ensure_future(storage.acounter("n"))
        second = asyncio.ensure_future(storage.acounter("n"))
        await wait_for(selected)
        first.cancel()
        release.set()
        assert await second == 4
    with pytest.raises(asyncio.CancelledError):
        await first
    assert hit(storage.acounter("n")) == 4


# --- consents ------------------------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=30)
CUSTOMER = "synthetic-young-professional"
PARTNER = "fund-partner"
PROFILE = frozenset({"profile:basic"})
CONSENT_WINDOW = TTL * (CONSENT_REFRESH_AFTER[1] + 1) / 2


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _counting(
    monkeypatch: pytest.MonkeyPatch,
    *,
    hold: threading.Event | None = None,
    reached: threading.Event | None = None,
) -> list[str]:
    """Record each database read of live consents; with ``hold``, the first read sets ``reached`` once it
    has read, then waits for ``hold``."""
    reads: list[str] = []
    real = ConsentStore._live

    def live(self: ConsentStore, customer_ref: str, at: datetime) -> list[LiveConsent]:
        found = real(self, customer_ref, at)
        reads.append(customer_ref)
        if hold is not None and len(reads) == 1:
            if reached is not None:
                reached.set()
            assert hold.wait(10)
        return found

    monkeypatch.setattr(ConsentStore, "_live", live)
    return reads


async def _landed(cache: ConsentCache, customer: str) -> None:
    task = cache.in_flight(customer)
    if task is not None:
        await asyncio.gather(task, return_exceptions=True)


async def test_a_consent_hit_in_the_refresh_window_starts_one_refresh(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Served from the entry; one re-read, which then replaces the entry (another worker's grant appears)."""
    clock = Clock()
    cache = ConsentCache(TTL_MS, clock=clock)  # not attached: writes elsewhere do not reach it
    store = ConsentStore(db, cache=cache)
    ConsentStore(db).grant(CUSTOMER, PARTNER, PROFILE, "测试", LATER, now=NOW)
    reads = _counting(monkeypatch)
    assert await store.alive_scopes(CUSTOMER, NOW) == {PARTNER: PROFILE}
    ConsentStore(db).grant(CUSTOMER, "other-partner", PROFILE, "测试", LATER, now=NOW)
    clock.t += CONSENT_WINDOW
    assert hit(store.alive_scopes(CUSTOMER, NOW)) == {PARTNER: PROFILE}
    assert hit(store.alive_scopes(CUSTOMER, NOW)) == {PARTNER: PROFILE}
    await _landed(cache, CUSTOMER)
    assert reads == [CUSTOMER, CUSTOMER]
    assert hit(store.alive_scopes(CUSTOMER, NOW)) == {PARTNER: PROFILE, "other-partner": PROFILE}
    assert cache.in_flight(CUSTOMER) is None
    clock.t += TTL - 0.001  # the refreshed entry is good for a full TTL from its read
    assert cache.get(CUSTOMER, NOW) is not None
    clock.t += 0.001
    assert cache.get(CUSTOMER, NOW) is None


async def test_a_revocation_during_an_in_flight_refresh_wins(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refresh read the consent before it was revoked in this process: the next request sees no consent,
    and the refresh's late result is neither stored nor handed to that request."""
    clock = Clock()
    cache = attach(db, ConsentCache(TTL_MS, clock=clock))
    store = ConsentStore(db, cache=cache)
    consent_id = ConsentStore(db).grant(CUSTOMER, PARTNER, PROFILE, "测试", LATER, now=NOW)
    assert await store.alive_scopes(CUSTOMER, NOW) == {PARTNER: PROFILE}
    release, reached = threading.Event(), threading.Event()
    reads = _counting(monkeypatch, hold=release, reached=reached)
    clock.t += CONSENT_WINDOW
    try:
        assert hit(store.alive_scopes(CUSTOMER, NOW)) == {PARTNER: PROFILE}
        refresh = cache.in_flight(CUSTOMER)
        assert refresh is not None
        await wait_for(reached)  # the refresh has read the live consent and is held before storing it
        ConsentStore(db).revoke(consent_id, CUSTOMER, now=NOW)
        assert await store.alive_scopes(CUSTOMER, NOW) == {}  # its own read, not the refresh's
    finally:
        release.set()
    await asyncio.gather(refresh)
    assert reads == [CUSTOMER, CUSTOMER]
    assert cache.get(CUSTOMER, NOW) == {}
    assert await store.alive_scopes(CUSTOMER, NOW) == {}


@pytest.fixture
def partner_host(settings: Settings, db: Database, kit: Any) -> tuple[PluginSet, ContextFactory]:
    """A partner plugin the customer consented to ``profile:basic`` for, and the host's context factory
    reading consents in worker threads (where concurrent misses can share a read in flight)."""
    settings = msgspec.structs.replace(settings, sqlite_reads_on_loop=False)
    plugins: PluginSet = get_plugin_manager(
        settings,
        load_entry_points=False,
        extra_plugins=[kit.plugin(PARTNER, kind="partner", scopes=["profile:basic"])],
    )
    ConsentStore(db).grant(CUSTOMER, PARTNER, PROFILE, "测试", LATER, now=NOW)
    provider = StaticDataProvider({r.id: r for r in PERSONAS.values()})
    factory = ContextFactory(settings=settings, db=db, provider=provider, plugins=plugins)
    return plugins, factory


async def test_concurrent_consent_misses_share_one_read(
    partner_host: tuple[PluginSet, ContextFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty concurrent requests of one customer, each calling a partner: one consents read."""
    plugins, factory = partner_host
    reads = _counting(monkeypatch)
    partner = [plugins.loaded[PARTNER]]
    requests = [factory.for_request(CUSTOMER, request_id=f"r-{n}", now=NOW) for n in range(20)]
    calls = await asyncio.gather(*(plugin_calls(r, partner) for r in requests))
    assert reads == [CUSTOMER]
    assert all(ctx.data.allows("profile:basic") for [(_, ctx)] in calls)


async def test_a_shared_consent_read_that_fails_gives_each_request_no_consents(
    partner_host: tuple[PluginSet, ContextFactory], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One failed shared read: every sharer gets no consents, nothing is cached, the next request reads."""
    _, factory = partner_host
    attempts: list[str] = []

    def down(self: ConsentStore, customer_ref: str, at: datetime) -> list[LiveConsent]:
        attempts.append(customer_ref)
        raise ConnectionError("database away")

    real = ConsentStore._live
    monkeypatch.setattr(ConsentStore, "_live", down)
    requests = [factory.for_request(CUSTOMER, request_id=f"r-{n}", now=NOW) for n in range(5)]
    assert await asyncio.gather(*(r.aconsents() for r in requests)) == [{}] * 5
    assert attempts == [CUSTOMER]
    assert len(factory.consent_cache) == 0
    monkeypatch.setattr(ConsentStore, "_live", real)
    again = factory.for_request(CUSTOMER, request_id="r-again", now=NOW)
    assert await again.aconsents() == {PARTNER: PROFILE}


async def test_a_failed_consent_refresh_keeps_the_entry_and_is_logged(
    db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The entry is served until it lapses, the failure is logged, and that entry is not refreshed again."""
    clock = Clock()
    cache = ConsentCache(TTL_MS, clock=clock)
    store = ConsentStore(db, cache=cache)
    ConsentStore(db).grant(CUSTOMER, PARTNER, PROFILE, "测试", LATER, now=NOW)
    assert await store.alive_scopes(CUSTOMER, NOW) == {PARTNER: PROFILE}
    attempts: list[str] = []

    def down(self: ConsentStore, customer_ref: str, at: datetime) -> list[LiveConsent]:
        attempts.append(customer_ref)
        raise ConnectionError("database away")

    monkeypatch.setattr(ConsentStore, "_live", down)
    clock.t += CONSENT_WINDOW
    with caplog.at_level(logging.WARNING, logger="fulcrum.consents"):
        assert hit(store.alive_scopes(CUSTOMER, NOW)) == {PARTNER: PROFILE}
        await _landed(cache, CUSTOMER)
        assert hit(store.alive_scopes(CUSTOMER, NOW)) == {PARTNER: PROFILE}
        assert cache.in_flight(CUSTOMER) is None
    assert attempts == [CUSTOMER]
    assert any("refreshing cached consents failed" in r.getMessage() for r in caplog.records)
    clock.t += TTL - CONSENT_WINDOW
    assert cache.get(CUSTOMER, NOW) is None


def test_consent_refresh_needs_a_loop() -> None:
    """Outside an event loop a due entry is served and no refresh starts (sync callers need none)."""
    clock = Clock()
    cache = ConsentCache(TTL_MS, clock=clock)
    cache.put(CUSTOMER, [LiveConsent(PARTNER, PROFILE, LATER)], NOW, cache.token())
    clock.t += CONSENT_WINDOW
    assert cache.probe(CUSTOMER, NOW) == ({PARTNER: PROFILE}, True)
    read: Callable[[], list[LiveConsent]] = list
    assert cache.refresh(CUSTOMER, NOW, read) is False
    assert cache.in_flight(CUSTOMER) is None
