"""``SqlPluginStorage``'s read cache: bounded staleness for display hooks, fresh reads for transactions.

Time is a :class:`VirtualClock`, so expiry is tested without sleeping. "Another worker" is a second
``SqlPluginStorage`` on the same database: its writes reach the database but not this cache.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import ENTRY_OVERHEAD, IN_CHUNK, ReadCache, SqlPluginStorage
from fulcrum_core.dispatch.clock import VirtualClock
from fulcrum_core.dispatch.eager import resume
from fulcrum_sdk.errors import LimitExceeded
from fulcrum_sdk.storage import MAX_VALUE_BYTES, PluginStorage, encode_value
from sqlalchemy import event

from .conftest import statements

TTL_MS = 1000








def first_send(coro: Coroutine[Any, Any, Any]) -> Any:
    """Send ``coro`` its first ``None`` outside any event loop; it must finish right there."""
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    return stop.value.value


async def eagerly(coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
    """Run ``coro`` as the dispatcher does: ``(True, result)`` if the first send finished it, else
    ``(False, result)`` after resuming it on the running loop."""
    try:
        first = coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    return False, await resume(coro, first)


def _clear(storage: SqlPluginStorage) -> None:
    assert storage.cache is not None
    storage.cache.clear()


def test_a_cached_read_is_served_without_the_database(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage
) -> None:
    """Within the TTL the cached view answers from memory, even after another worker's write."""
    other.put("doc", {"v": 1})
    other.add("stock", 5)
    assert storage.get("doc") == {"v": 1}
    assert storage.counter("stock") == 5
    other.put("doc", {"v": 2})
    other.add("stock", 1)
    with statements(db) as seen:
        assert storage.get("doc") == {"v": 1}
        assert storage.counter("stock") == 5
        assert storage.counters(["stock"]) == {"stock": 5}
    assert seen == []


def test_entries_expire_after_the_ttl(
    storage: SqlPluginStorage, other: SqlPluginStorage, clock: VirtualClock
) -> None:
    """Another worker's write is visible once the entry is ``storage_cache_ms`` old, not before."""
    other.add("stock", 5)
    assert storage.counter("stock") == 5
    other.add("stock", 1)
    clock.advance(TTL_MS / 1000 - 0.001)
    assert storage.counter("stock") == 5
    clock.advance(0.001)
    assert storage.counter("stock") == 6


def test_absence_is_cached_too(db: Database, storage: SqlPluginStorage, other: SqlPluginStorage) -> None:
    """A missing document or counter is remembered as missing: no query until it expires."""
    assert storage.get("doc") is None
    assert storage.counter("stock") == 0
    other.put("doc", "late")
    with statements(db) as seen:
        assert storage.get("doc") is None
        assert storage.counter("stock") == 0
    assert seen == []


def test_writes_go_through_to_the_database_and_the_cache(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage
) -> None:
    """put → new value, delete → absent, add → the returned total: this worker reads its writes at once."""
    assert storage.get("doc") is None  # cached as absent
    assert storage.counter("stock") == 0
    storage.put("doc", {"v": 1})
    assert other.get("doc") == {"v": 1}  # durable before put returned
    with statements(db) as seen:
        assert storage.get("doc") == {"v": 1}
    assert seen == []
    other.add("stock", 10)  # unseen by this cache
    assert storage.add("stock", 1) == 11
    assert storage.counter("stock") == 11  # the value the database returned, not cached 0 + 1
    storage.delete("doc")
    assert storage.get("doc") is None
    assert other.get("doc") is None


def test_a_refused_add_changes_nothing_and_refreshes_the_counter(
    storage: SqlPluginStorage, other: SqlPluginStorage
) -> None:
    """LimitExceeded leaves the database alone; the cache learns the current value it was refused at."""
    assert storage.counter("stock") == 0
    other.add("stock", 3)
    with pytest.raises(LimitExceeded) as refused:
        storage.add("stock", 1, upper=3)
    assert refused.value.current == 3
    assert storage.counter("stock") == 3
    assert other.counter("stock") == 3


def test_returned_documents_are_copies(storage: SqlPluginStorage) -> None:
    """Mutating what ``get`` returned does not change what the next read sees."""
    storage.put("doc", {"tags": ["a"]})
    first = storage.get("doc")
    assert first is not None
    first["tags"].append("mutated")
    assert storage.get("doc") == {"tags": ["a"]}


def test_the_fresh_view_always_reads_the_database_and_refreshes_the_cache(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage
) -> None:
    """The transaction path's view bypasses the cache on reads; what it reads updates the shared cache."""
    fresh = storage.fresh
    assert fresh.is_fresh
    assert not storage.is_fresh
    assert fresh.cached is storage
    assert storage.fresh is fresh
    assert fresh.fresh is fresh
    assert storage.counter("stock") == 0
    other.add("stock", 7)
    other.put("doc", 1)
    with statements(db) as seen:
        assert fresh.counter("stock") == 7
        assert fresh.get("doc") == 1
    assert len(seen) == 2
    with statements(db) as seen:
        assert storage.counter("stock") == 7  # refreshed by the fresh read
        assert storage.get("doc") == 1
    assert seen == []
    assert fresh.add("stock", 1) == 8  # writes through the fresh view update the cache as well
    assert storage.counter("stock") == 8


def test_the_cache_is_bounded(db: Database, clock: VirtualClock) -> None:
    """Past ``max_entries`` the least recently used entry is dropped (and read again when asked for)."""
    storage = SqlPluginStorage(db, "p", cache_ms=TTL_MS, max_entries=3, clock=clock)
    cache = storage.cache
    assert cache is not None
    assert storage.counters(["a", "b", "c"]) == {"a": 0, "b": 0, "c": 0}
    storage.counter("a")  # a is now the most recent
    storage.get("d")
    assert len(cache) == 3
    with statements(db) as seen:
        storage.counter("a")
        storage.counter("c")
        storage.get("d")
    assert seen == []
    with statements(db) as seen:
        storage.counter("b")  # evicted first
    assert len(seen) == 1
    assert len(cache) == 3


def _cost(key: str, value: Any = None) -> int:
    """What a cached entry of ``key`` is charged: its document's JSON, its key, the overhead."""
    return ENTRY_OVERHEAD + len(key) + (0 if value is None else len(encode_value(key, value)))


def test_the_cache_is_bounded_in_bytes(db: Database, clock: VirtualClock, other: SqlPluginStorage) -> None:
    """Past ``max_bytes`` the least recently used entries are dropped, however few the entries: a
    plugin's large documents cannot fill a worker's memory up to the entry bound."""
    big = {"text": "x" * 20_000}
    room = 2 * _cost("a", big) + _cost("n")  # two large documents and a counter, not three documents
    storage = SqlPluginStorage(db, "p", cache_ms=TTL_MS, max_bytes=room, clock=clock)
    cache = storage.cache
    assert cache is not None
    for key in ("a", "b", "c"):
        other.put(key, big)
    storage.counter("n")
    storage.get("a")
    storage.get("b")
    assert (len(cache), cache.size) == (3, room)
    storage.get("c")  # the counter and "a" are the least recent: both go to make room
    assert (len(cache), cache.size) == (2, 2 * _cost("a", big))
    with statements(db) as seen:
        assert storage.get("b") == big
        assert storage.get("c") == big
    assert seen == []
    with statements(db) as seen:
        assert storage.get("a") == big  # dropped: read again (and "b" makes room for it)
    assert len(seen) == 1
    assert cache.size <= room


def test_a_document_larger_than_the_whole_cache_is_never_cached(
    db: Database, clock: VirtualClock, other: SqlPluginStorage
) -> None:
    """A document that alone exceeds ``max_bytes`` is read from the database each time, and the
    smaller value cached before it under that key is dropped, never served after the write."""
    storage = SqlPluginStorage(db, "p", cache_ms=TTL_MS, max_bytes=4096, clock=clock)
    cache = storage.cache
    assert cache is not None
    storage.put("doc", {"v": 1})
    assert cache.size == _cost("doc", {"v": 1})
    large = {"text": "y" * 8000}
    storage.put("doc", large)
    assert (len(cache), cache.size) == (0, 0)
    other.put("doc", {"v": 2})
    with statements(db) as seen:
        assert storage.get("doc") == {"v": 2}  # not the cached {"v": 1}, not the large one
    assert len(seen) == 1


def test_the_byte_count_follows_every_way_an_entry_leaves(
    db: Database, clock: VirtualClock, other: SqlPluginStorage
) -> None:
    """Expiry (one key or a batch), a replaced value, a write that failed and a clear each give back
    exactly what the entry was charged, so the bound never drifts."""
    storage = SqlPluginStorage(db, "p", cache_ms=TTL_MS, clock=clock)
    cache = storage.cache
    assert cache is not None
    storage.put("doc", {"v": "a" * 100})
    storage.counters(["x", "y"])
    assert cache.size == _cost("doc", {"v": "a" * 100}) + _cost("x") + _cost("y")
    storage.put("doc", {"v": 1})  # replaced by a smaller document
    assert cache.size == _cost("doc", {"v": 1}) + _cost("x") + _cost("y")
    clock.advance(TTL_MS / 1000)
    storage.get("doc")  # expired: dropped, then read again
    assert cache.size == _cost("doc", {"v": 1}) + _cost("x") + _cost("y")
    clock.advance(TTL_MS / 1000)
    asyncio.run(storage.acounters(["x", "y"]))  # a batch of expired entries, probed together
    assert cache.size == _cost("doc", {"v": 1}) + _cost("x") + _cost("y")
    with pytest.raises(RuntimeError), cache.writing(("d", "doc")):
        raise RuntimeError("the database write failed")  # what the database holds is unknown here
    assert cache.size == _cost("x") + _cost("y")
    cache.clear()
    assert (len(cache), cache.size) == (0, 0)
    storage.get("doc")
    assert cache.size == _cost("doc", {"v": 1})


def test_a_full_worker_holds_at_most_its_byte_bound_of_the_largest_documents(
    db: Database, clock: VirtualClock
) -> None:
    """With documents at the SDK's size cap the cache stays within its byte bound, not its entry
    bound's worth of them."""
    storage = SqlPluginStorage(db, "p", cache_ms=TTL_MS, max_bytes=10 * MAX_VALUE_BYTES, clock=clock)
    cache = storage.cache
    assert cache is not None
    doc = {"t": "z" * (MAX_VALUE_BYTES - 20)}
    for n in range(25):
        storage.put(f"k{n}", doc)
    assert cache.size <= 10 * MAX_VALUE_BYTES
    assert len(cache) == 9  # ten documents and their overheads do not fit in ten caps


def test_zero_ttl_turns_the_cache_off(db: Database, other: SqlPluginStorage) -> None:
    """With ``cache_ms=0`` every read goes to the database."""
    storage = SqlPluginStorage(db, "p", cache_ms=0)
    assert storage.cache is None
    assert storage.counter("stock") == 0
    other.add("stock", 2)
    assert storage.counter("stock") == 2


def test_bad_cache_settings_are_refused(db: Database) -> None:
    """A negative TTL or an empty cache is a configuration error, named."""
    with pytest.raises(ValueError, match="cache_ms"):
        SqlPluginStorage(db, "p", cache_ms=-1)
    with pytest.raises(ValueError, match="max_entries"):
        ReadCache(ttl_ms=10, max_entries=0)
    with pytest.raises(ValueError, match="max_bytes"):
        ReadCache(ttl_ms=10, max_bytes=0)
    with pytest.raises(ValueError, match="ttl_ms"):
        ReadCache(ttl_ms=0)


def test_counters_are_read_in_one_query(db: Database, storage: SqlPluginStorage) -> None:
    """``counters`` asks for every uncached key in one ``IN`` query, missing keys as 0, in caller order."""
    storage.add("a", 1)
    storage.fresh.add("c", 3)
    _clear(storage)
    with statements(db) as seen:
        got = storage.counters(["c", "b", "a", "c"])
    assert got == {"c": 3, "b": 0, "a": 1}
    assert list(got) == ["c", "b", "a"]
    assert len(seen) == 1
    assert " IN " in seen[0].upper()
    with statements(db) as seen:
        assert storage.counters(["a", "zz"]) == {"a": 1, "zz": 0}  # only zz is asked for
    assert len(seen) == 1


def test_many_counters_are_chunked(db: Database) -> None:
    """More keys than one ``IN`` list holds take one query per chunk, and all come back."""
    storage = SqlPluginStorage(db, "p")
    keys = [f"k{i}" for i in range(IN_CHUNK * 2 + 1)]
    storage.add(keys[-1], 4)
    with statements(db) as seen:
        got = storage.counters(keys)
    assert len(got) == len(keys)
    assert got[keys[-1]] == 4
    assert got[keys[0]] == 0
    assert len(seen) == 3


def test_counters_checks_every_key(storage: SqlPluginStorage) -> None:
    """An empty or over-long key, or a bare string instead of a list, is refused before any query."""
    assert storage.counters([]) == {}
    with pytest.raises(ValueError, match="non-empty"):
        storage.counters(["ok", ""])
    with pytest.raises(ValueError, match="at most"):
        storage.counters(["x" * 201])
    with pytest.raises(TypeError, match="sequence"):
        storage.counters("stock")


def test_reads_run_without_an_explicit_transaction(db: Database, other: SqlPluginStorage) -> None:
    """A storage read is one SELECT: no BEGIN before it, no ROLLBACK after it (both backends)."""
    other.put("doc", 1)
    with statements(db) as seen:
        assert other.get("doc") == 1
        assert other.counters(["a", "b"]) == {"a": 0, "b": 0}
    assert [s.split()[0].upper() for s in seen] == ["SELECT", "SELECT"]
    if db.dialect == "postgresql":  # psycopg sends BEGIN by itself unless in autocommit
        from psycopg.pq import TransactionStatus

        with db.single_reads.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
            assert conn.connection.driver_connection.info.transaction_status == TransactionStatus.IDLE  # type: ignore[union-attr]
        with db.engine.connect() as conn:  # the same pooled connection is back in its usual mode
            conn.exec_driver_sql("SELECT 1")
            assert conn.connection.driver_connection.info.transaction_status == TransactionStatus.INTRANS  # type: ignore[union-attr]


def test_reads_run_prebuilt_statements(db: Database) -> None:
    """Document and counter reads send the same SQL whatever the plugin and keys (the values are bound,
    nothing is rendered per read; one counters statement per number of keys), and each read still
    answers its own plugin's keys."""
    first, second = SqlPluginStorage(db, "p"), SqlPluginStorage(db, "q")
    first.put("doc", 1)
    second.add("a", 3)
    with statements(db, only="SELECT") as seen:
        assert (first.get("doc"), second.get("doc"), first.get("other")) == (1, None, None)
        assert first.counters(["a", "b"]) == {"a": 0, "b": 0}
        assert second.counters(["c", "a"]) == {"c": 0, "a": 3}
        assert second.counters(["a", "b", "c"]) == {"a": 3, "b": 0, "c": 0}
    assert len(seen) == 6
    assert len(set(seen[:3])) == 1
    assert seen[3] == seen[4]
    assert seen[5] != seen[4]
    assert not any(name in statement for statement in seen for name in ('"p"', "'p'", "'a'", "'doc'"))

def test_transactions_still_begin(db: Database) -> None:
    """Writes and read sessions are unchanged: they still run inside BEGIN … COMMIT on SQLite."""
    storage = SqlPluginStorage(db, "p")
    with statements(db) as seen:
        storage.add("a", 1)
    if db.dialect == "sqlite":
        assert seen[0].upper().startswith("BEGIN")
    with db.read_session() as session:
        assert session.connection().in_transaction()


# --- async ---------------------------------------------------------------------------------------


def test_a_cache_hit_completes_on_the_first_send(storage: SqlPluginStorage) -> None:
    """``aget``/``acounter``/``acounters`` on cached keys finish on their first send: no loop needed."""
    storage.put("doc", {"v": 1})
    storage.add("a", 2)
    assert storage.counter("b") == 0
    assert first_send(storage.aget("doc")) == {"v": 1}
    assert first_send(storage.acounter("a")) == 2
    assert first_send(storage.acounters(["a", "b"])) == {"a": 2, "b": 0}


@pytest.mark.anyio
async def test_a_miss_suspends(
    storage: SqlPluginStorage, other: SqlPluginStorage, clock: VirtualClock
) -> None:
    """A miss, a partial miss, an expired entry and every fresh-view read suspend (a thread), then answer."""
    other.add("a", 2)
    assert await eagerly(storage.aget("never-read")) == (False, None)
    assert await eagerly(storage.acounters(["a", "b"])) == (False, {"a": 2, "b": 0})
    assert await eagerly(storage.acounters(["a", "b"])) == (True, {"a": 2, "b": 0})  # now cached
    assert await eagerly(storage.fresh.acounter("a")) == (False, 2)
    clock.advance(TTL_MS / 1000)
    assert await eagerly(storage.acounter("a")) == (False, 2)
    assert await eagerly(storage.aput("doc", 1)) == (False, None)  # writes always go to a thread


@pytest.mark.anyio
async def test_a_partly_cached_batch_reads_only_what_is_missing(
    db: Database, storage: SqlPluginStorage, other: SqlPluginStorage
) -> None:
    """``acounters`` with repeats and a mix of cached and uncached keys: one query for the uncached
    ones, the answer by key in the order of first mention, then every key a hit in that order."""
    assert await storage.acounter("a") == 0
    other.add("a", 2)  # another worker: the cache still says 0 for a
    other.add("c", 3)
    with statements(db, only="SELECT") as seen:
        done, got = await eagerly(storage.acounters(["c", "a", "b", "c", "a"]))
    assert (done, got, list(got)) == (False, {"c": 3, "a": 0, "b": 0}, ["c", "a", "b"])
    assert len(seen) == 1
    with statements(db) as seen:
        got = first_send(storage.acounters(["b", "c", "a", "b"]))
    assert (got, list(got), seen) == ({"b": 0, "c": 3, "a": 0}, ["b", "c", "a"], [])
    assert first_send(storage.acounters([])) == {}


class _Key(str):
    """A ``str`` subclass: a valid storage key, as for the plain API."""


def test_the_async_reads_check_every_key_before_reading(db: Database, storage: SqlPluginStorage) -> None:
    """A bad key (for ``acounters``, anywhere in the batch) raises what ``check_key`` raises, before
    any read, even with every other key cached; a ``str`` subclass is the same key as the plain string."""
    storage.add("a", 1)
    storage.put("doc", 2)
    with statements(db) as seen:
        for key, match in [("", "non-empty"), ("x" * 201, "201 characters"), (7, "non-empty string")]:
            with pytest.raises(ValueError, match=match):
                storage.aget(key).send(None)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match=match):
                storage.fresh.aget(key).send(None)  # type: ignore[arg-type]
        for keys, error, match in [
            (["a", ""], ValueError, "non-empty"),
            (["a", "x" * 201], ValueError, "201 characters; at most 200"),
            (["a", 7], ValueError, "non-empty string"),
            (["a", None], ValueError, "non-empty string"),
            ("a", TypeError, "sequence"),
        ]:
            with pytest.raises(error, match=match):
                storage.acounters(keys).send(None)  # type: ignore[arg-type]
    assert seen == []
    assert storage.counter("x" * 200) == 0  # the longest key is fine, and now cached
    assert first_send(storage.acounters([_Key("a"), "x" * 200])) == {"a": 1, "x" * 200: 0}
    assert first_send(storage.aget(_Key("doc"))) == 2


@pytest.mark.anyio
async def test_the_async_api_matches_the_sync_one(storage: SqlPluginStorage, other: SqlPluginStorage) -> None:
    """Every async method reads and writes what its plain twin would, through the same cache."""
    s: PluginStorage = storage
    assert await s.aget("doc") is None
    await s.aput("doc", {"v": 1})
    assert await s.aget("doc") == {"v": 1}
    assert other.get("doc") == {"v": 1}
    assert await s.aadd("stock", 2, upper=3) == 2
    with pytest.raises(LimitExceeded):
        await s.aadd("stock", 2, upper=3)
    assert await s.acounter("stock") == 2
    assert await s.acounters(["stock", "none"]) == {"stock": 2, "none": 0}
    await s.adelete("doc")
    assert await s.aget("doc") is None
    assert other.get("doc") is None
    with pytest.raises(ValueError, match="non-empty"):
        await s.aget("")


def test_a_read_racing_a_write_does_not_cache_the_old_value(db: Database, clock: VirtualClock) -> None:
    """A read that started before a write finished must not overwrite the write's value in the cache."""
    storage = SqlPluginStorage(db, "p", cache_ms=TTL_MS, clock=clock)
    storage.add("stock", 1)
    _clear(storage)
    selected, resume = threading.Event(), threading.Event()
    reader_ids: set[int] = set()

    def pause_reader(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.get_ident() in reader_ids and statement.upper().startswith("SELECT"):
            selected.set()
            resume.wait(10)

    def read() -> None:
        reader_ids.add(threading.get_ident())
        storage.counter("stock")

    event.listen(db.engine, "after_cursor_execute", pause_reader)
    try:
        reader = threading.Thread(target=read)
        reader.start()
        assert selected.wait(10)  # the reader has read 1 and not yet filled the cache
        assert storage.add("stock", 1) == 2
        resume.set()
        reader.join(10)
    finally:
        event.remove(db.engine, "after_cursor_execute", pause_reader)
    assert storage.counter("stock") == 2


def test_concurrent_writes_leave_the_cache_at_the_database_value(
    storage: SqlPluginStorage, other: SqlPluginStorage
) -> None:
    """Many threads adding to one counter: afterwards the cached value is the committed total."""
    assert storage.counter("stock") == 0

    async def bump() -> None:
        await asyncio.gather(*(storage.aadd("stock", 1) for _ in range(20)))

    asyncio.run(bump())
    assert other.counter("stock") == 20
    assert storage.counter("stock") == 20
