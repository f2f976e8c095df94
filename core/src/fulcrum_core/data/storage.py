"""``SqlPluginStorage``: the SDK's ``PluginStorage`` backed by the platform database, with a read cache.

Every write is one short transaction, atomic on SQLite and PostgreSQL alike, that also keeps the
plugin's usage row for its quota (:mod:`fulcrum_core.data.quota`): a bounded ``add`` is a conditional
``UPDATE … WHERE <bounds> RETURNING`` of an existing counter (one statement, the usage untouched), else
an ``INSERT … ON CONFLICT DO NOTHING RETURNING`` of a fresh one, counted; a ``put`` inserts a new key,
or locks, measures and replaces an existing one, and charges the difference. A bound is never
checked by reading and then writing. A read is one ``SELECT`` without an explicit transaction
(:attr:`Database.single_reads`); ``counters`` reads many keys in one ``IN`` query. Keys live in the
plugin's own namespace. Any database failure surfaces as
:class:`~fulcrum_sdk.errors.StorageUnavailable`; one at a write's commit, which may have been applied,
as its :class:`~fulcrum_sdk.errors.StorageOutcomeUnknown`.

Each plugin's storage has a per-process :class:`ReadCache` (``storage_cache_ms``; 0 turns it off)
and two views over it. The *cached* view (display hooks) answers reads from entries younger than
the TTL; the *fresh* view (the transaction path, :attr:`SqlPluginStorage.fresh`) always reads the
database and refreshes the cache with what it read. Writes through either view go to the database
first and then into the cache (``put`` → the new bytes, ``delete`` → absent, ``add`` → the value
the database returned), so this worker reads its own writes; other workers may see them up to the
TTL later. The ``async`` methods answer a cache hit without suspending (the dispatcher then runs the
hook as a plain function call) and run the database call in a worker thread otherwise; with
``reads_on_loop`` (SQLite only) a read runs on the event loop itself and then yields to it once,
because handing a read of tens of µs to a thread costs several hundred µs of CPU under load.

On the cached view's ``async`` reads, two things keep a hot key from ever missing all at once:
*refresh-ahead* — a hit on an entry past its refresh point (:data:`REFRESH_AFTER`) is still served, and
starts one background re-read of that key (at most one in flight per key) that replaces the entry
when it lands, unless a write began meanwhile — and *single-flight* — concurrent misses of one key
share one database read. Nothing older than the TTL is ever served.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Final, TypeVar, cast

import msgspec
from fulcrum_sdk.errors import (  # _host_unavailable: the host's own mark
    LimitExceeded,
    StorageOutcomeUnknown,
    _host_unavailable,
)
from fulcrum_sdk.storage import (
    MAX_KEY_LENGTH,
    StorageQuota,
    check_add,
    check_key,
    document_size,
    encode_value,
)
from sqlalchemy import BindParameter, Connection, Table, bindparam, select
from sqlalchemy import exc as sa_exc

from fulcrum_core import host_threads
from fulcrum_core.data.db import Database
from fulcrum_core.data.errors import storage_errors
from fulcrum_core.data.models.plugin_storage import PluginCounterRow, PluginDocumentRow
from fulcrum_core.data.prepared import PreparedRead
from fulcrum_core.data.quota import busy, charge
from fulcrum_core.data.reconnect import idempotent_read
from fulcrum_core.data.types import utcnow
from fulcrum_core.data.write_statements import counter_writes, document_writes
from fulcrum_core.dispatch.clock import MONOTONIC, Clock
from fulcrum_core.dispatch.leftovers import host_task

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "DEFAULT_CACHE_ENTRIES",
    "IN_CHUNK",
    "REFRESH_AFTER",
    "ReadCache",
    "SqlPluginStorage",
    "refresh_fraction",
]

log = logging.getLogger("fulcrum.storage")

_DOCS = cast(Table, PluginDocumentRow.__table__)
_COUNTERS = cast(Table, PluginCounterRow.__table__)

# The reads, built once: a statement built per call costs more CPU than the database's own work
# (coercing each clause, then a fresh cache key to find the compiled form), and so does running a
# prebuilt one through ``Connection.execute``; the request path's reads are compiled once per dialect and
# run on the cursor (``PreparedRead``), the values travelling as bound parameters.
_DOC_READ = PreparedRead(
    select(_DOCS.c.value).where(_DOCS.c.plugin_id == bindparam("plugin_id"), _DOCS.c.key == bindparam("key"))
)
_COUNTER_READ = select(_COUNTERS.c.value).where(
    _COUNTERS.c.plugin_id == bindparam("plugin_id"), _COUNTERS.c.key == bindparam("key")
)


@functools.lru_cache(maxsize=64)
def _counters_read(count: int) -> PreparedRead:
    """The read of ``count`` counters of one plugin (``IN`` with one parameter per key: ``k0``, ``k1``, …).

    One statement per number of keys, compiled at its first read in a process (under a millisecond);
    pages ask for a few numbers of keys (the pension two, the merchant its city's coupons)."""
    keys: list[BindParameter[str]] = [bindparam(f"k{i}") for i in range(count)]
    return PreparedRead(
        select(_COUNTERS.c.key, _COUNTERS.c.value).where(
            _COUNTERS.c.plugin_id == bindparam("plugin_id"), _COUNTERS.c.key.in_(keys)
        )
    )


DEFAULT_CACHE_ENTRIES: Final = 10_000
"""Entries (documents + counters) each plugin's read cache holds before it drops the least recent."""

DEFAULT_CACHE_BYTES: Final = 8 * 1024 * 1024
"""Bytes (keys and encoded documents, plus :data:`ENTRY_OVERHEAD` an entry) each plugin's read cache
holds before it drops the least recent: the entry bound alone let a plugin keeping 10 000 documents
of 64 KiB hold 640 MB of every worker's memory."""

ENTRY_OVERHEAD: Final = 160
"""What an entry is charged beyond its key and document: its tuple, slot and ordered-dict node."""

IN_CHUNK: Final = 500
"""Keys per ``IN (…)`` query in ``counters``; well under SQLite's and psycopg's parameter limits."""

_STRIPES: Final = 64

_RACES: Final = 5
"""Rounds a write tries when concurrent writes of its key keep slipping in between its statements."""

REFRESH_AFTER: Final = (0.6, 0.9)
"""Bounds of the fraction of the TTL after which an ``async`` hit also starts a re-read of its key.

Each key's point is fixed within them by a hash of the key, so entries filled together (one page's
keys, every customer's after a restart) are not all re-read in the same instant. With the default
1 s TTL the re-read (one indexed ``SELECT``, ~1 ms) has 100-400 ms to land, and if it is late the
misses share it; a hot key costs one read per 600-900 ms.
"""


def refresh_fraction(key: str) -> float:
    """The fraction of the TTL after which ``key``'s entry is due a refresh (within :data:`REFRESH_AFTER`)."""
    low, high = REFRESH_AFTER
    return low + (high - low) * (zlib.crc32(key.encode()) % 1024) / 1024


_DOC: Final = "d"
_COUNTER: Final = "c"

_Slot = tuple[str, str]  # (kind, key)
_Value = bytes | int | None  # encoded document, counter, or None: a document known to be absent

_T = TypeVar("_T")


class _Miss:
    __slots__ = ()


MISS: Final = _Miss()
"""What :meth:`ReadCache.lookup` returns when it has no live entry."""


class ReadCache:
    """An LRU of one plugin's storage reads, bounded in entries and in bytes, each entry good for
    ``ttl_ms`` after it was learnt.

    Documents are kept encoded (decoded on every read, so a caller mutating what it got cannot change
    the cache), counters as ints, and a missing document as ``None``. Writes to a key take one of
    ``_STRIPES`` locks for the duration of the database write, so this process's writes to one key
    reach the cache in commit order; a stripe's generation (odd while a write is in flight) lets a
    read that raced a write drop its now-outdated result instead of caching it.
    """

    __slots__ = (
        "_entries",
        "_gens",
        "_lock",
        "_monotonic",
        "_stripes",
        "flights",
        "max_bytes",
        "max_entries",
        "size",
        "ttl",
    )

    def __init__(
        self,
        *,
        ttl_ms: int,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        clock: Clock = MONOTONIC,
    ) -> None:
        if ttl_ms <= 0:
            raise ValueError(f"ttl_ms must be positive, got {ttl_ms}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.ttl = ttl_ms / 1000
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        # What the entries are charged in all (see _cost); kept under max_bytes.
        self.size = 0
        # The production clock is time.monotonic itself: read it without the method call around it.
        self._monotonic: Callable[[], float] = time.monotonic if clock is MONOTONIC else clock.monotonic
        # slot -> (expires at, refresh due at, value), on the clock
        self._entries: OrderedDict[_Slot, tuple[float, float, _Value]] = OrderedDict()
        # Reads in flight on an event loop (misses and refreshes); used only from that loop's thread.
        self.flights = _Flights()
        self._lock = threading.Lock()  # guards _entries; never held across I/O
        self._stripes = tuple(threading.Lock() for _ in range(_STRIPES))
        self._gens = [0] * _STRIPES

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _stripe(slot: _Slot) -> int:
        return zlib.crc32(slot[1].encode()) % _STRIPES

    def lookup(self, slot: _Slot) -> _Value | _Miss:
        """The live cached value of ``slot``, or :data:`MISS` (absent or older than the TTL)."""
        return self.probe(slot)[0]

    def probe(self, slot: _Slot) -> tuple[_Value | _Miss, bool]:
        """:meth:`lookup`, and whether the live entry is past its refresh point (a re-read is due)."""
        with self._lock:
            entry = self._entries.get(slot)
            if entry is None:
                return MISS, False
            now = self._monotonic()
            if entry[0] <= now:
                del self._entries[slot]
                self.size -= _cost(slot, entry[2])
                return MISS, False
            self._entries.move_to_end(slot)
            return entry[2], entry[1] <= now

    def probe_keys(
        self, kind: str, keys: Iterable[str]
    ) -> tuple[dict[str, _Value], list[_Slot], list[_Slot]]:
        """:meth:`probe` of ``(kind, key)`` for each of ``keys`` under one lock and one reading of the
        clock: the live values by key (in ``keys``' order), the slots that missed, the slots due a re-read.

        A page's batched read costs one lock and one clock read instead of one per key."""
        found: dict[str, _Value] = {}
        missed: list[_Slot] = []
        due: list[_Slot] = []
        with self._lock:
            entries = self._entries
            now = self._monotonic()
            for key in keys:
                slot = (kind, key)
                entry = entries.get(slot)
                if entry is None:
                    missed.append(slot)
                elif entry[0] <= now:
                    del entries[slot]
                    self.size -= _cost(slot, entry[2])
                    missed.append(slot)
                else:
                    entries.move_to_end(slot)
                    found[key] = entry[2]
                    if entry[1] <= now:
                        due.append(slot)
        return found, missed, due

    def now(self) -> float:
        """The cache's clock; read it before a database read and hand it to :meth:`fill` as ``learnt``."""
        return self._monotonic()

    def hold_off(self, slot: _Slot) -> None:
        """No more refreshes of ``slot``'s current entry (its refresh failed): it just expires."""
        with self._lock:
            entry = self._entries.get(slot)
            if entry is not None:
                self._entries[slot] = (entry[0], entry[0], entry[2])

    def stamp(self, slot: _Slot) -> int:
        """Taken before reading ``slot`` from the database; hand it back to :meth:`fill`."""
        return self._gens[self._stripe(slot)]

    def fill(self, slot: _Slot, value: _Value, stamp: int, *, learnt: float | None = None) -> None:
        """Cache what the database said, unless a write to the stripe started since ``stamp``.

        ``learnt`` (the clock before the read began; default now) starts the entry's TTL, so a
        slow read is not served for longer than the TTL after it may have been read.
        """
        with self._lock:
            if stamp % 2 == 0 and self._gens[self._stripe(slot)] == stamp:
                self._store(slot, value, learnt)

    @contextmanager
    def writing(self, slot: _Slot) -> Iterator[Callable[[_Value], None]]:
        """Hold ``slot``'s stripe across a database write; call the yielded function with the result.

        If the block raises, or ends without recording a value, the entry is dropped: what the
        database holds is then unknown here.
        """
        index = self._stripe(slot)
        recorded: list[_Value] = []
        with self._stripes[index]:
            self._gens[index] += 1  # odd: a write is in flight, concurrent reads must not fill
            try:
                yield recorded.append
            finally:
                with self._lock:
                    if recorded:
                        self._store(slot, recorded[-1])
                    else:
                        self._drop(slot)
                    self._gens[index] += 1

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()
            self.size = 0

    def _drop(self, slot: _Slot) -> None:
        # Caller holds self._lock.
        entry = self._entries.pop(slot, None)
        if entry is not None:
            self.size -= _cost(slot, entry[2])

    def _store(self, slot: _Slot, value: _Value, learnt: float | None = None) -> None:
        # Caller holds self._lock.
        entries = self._entries
        self._drop(slot)
        cost = _cost(slot, value)
        if cost > self.max_bytes:
            return  # it alone would fill the cache: read from the database each time instead
        start = self._monotonic() if learnt is None else learnt
        entries[slot] = (start + self.ttl, start + self.ttl * refresh_fraction(slot[1]), value)
        self.size += cost
        while len(entries) > self.max_entries or self.size > self.max_bytes:
            old, entry = entries.popitem(last=False)
            self.size -= _cost(old, entry[2])


def _cost(slot: _Slot, value: _Value) -> int:
    """What an entry is charged against :attr:`ReadCache.max_bytes`: its key, its encoded document
    (counters and known absences carry none) and :data:`ENTRY_OVERHEAD`."""
    return ENTRY_OVERHEAD + len(slot[1]) + (len(value) if value.__class__ is bytes else 0)


_Reading = dict[_Slot, _Value]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running this code, or ``None`` (no loop, or another async library)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _Flights:
    """One plugin's database reads in flight on the event loop, by slot: misses join them, and a key
    is refreshed by at most one at a time.

    A flight is an asyncio task running a read in a worker thread; the table holds it (so it is not
    garbage collected) until it lands. A miss joins a flight only if no write to the slot's stripe
    began since the flight started (its stamp), so it never gets a read older than a write it saw.
    Touched only from the loop's thread, so it needs no lock.
    """

    __slots__ = ("_by_slot",)

    def __init__(self) -> None:
        self._by_slot: dict[_Slot, tuple[asyncio.Task[_Reading], int]] = {}

    def __len__(self) -> int:
        return len(self._by_slot)

    def joinable(
        self, slot: _Slot, stamp: int, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Task[_Reading] | None:
        """The flight reading ``slot`` on ``loop`` that started at generation ``stamp``, if any."""
        found = self._by_slot.get(slot)
        if found is None or found[1] != stamp or found[0].done() or found[0].get_loop() is not loop:
            return None
        return found[0]

    def pending(self) -> list[asyncio.Task[_Reading]]:
        """The flights that have not landed yet (each once), e.g. for a test to wait on."""
        return list({id(task): task for task, _ in self._by_slot.values() if not task.done()}.values())

    def busy(self, slot: _Slot, loop: asyncio.AbstractEventLoop) -> bool:
        """True while a flight of ``loop`` is reading ``slot``."""
        found = self._by_slot.get(slot)
        return found is not None and not found[0].done() and found[0].get_loop() is loop

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        cache: ReadCache,
        slots: Sequence[_Slot],
        read: Callable[[Sequence[_Slot]], _Reading],
        *,
        refresh: str | None = None,
        on_loop: bool = False,
    ) -> asyncio.Task[_Reading]:
        """Start ``read(slots)`` in a worker thread (``on_loop``: in the task itself) without waiting
        for it; ``refresh`` names the plugin when nobody awaits the flight (a refresh), whose failure
        is then logged."""
        coro = _call(read, slots) if on_loop else _in_thread(_bounded_read, read, slots)
        task = host_task(coro, loop=loop)  # the host's, even when a plugin's read started it
        for slot in slots:
            self._by_slot[slot] = (task, cache.stamp(slot))
        task.add_done_callback(lambda done: self._landed(done, cache, slots, refresh))
        return task

    def _landed(
        self, task: asyncio.Task[_Reading], cache: ReadCache, slots: Sequence[_Slot], refresh: str | None
    ) -> None:
        for slot in slots:
            found = self._by_slot.get(slot)
            if found is not None and found[0] is task:
                del self._by_slot[slot]
        if task.cancelled():
            return
        exc = task.exception()  # also marks a miss's failure as retrieved when its waiters gave up
        if exc is not None and refresh is not None:
            log.warning(
                "refreshing %d cached storage key(s) of plugin %r failed; they are served until their TTL",
                len(slots),
                refresh,
                exc_info=exc,
            )
            for slot in slots:
                cache.hold_off(slot)


class _Shared:
    """What both views of one plugin's storage share: the database, the plugin id, the cache, and
    whether reads run on the event loop."""

    __slots__ = ("cache", "counter_writes", "db", "doc_writes", "on_loop", "plugin_id", "quota")

    def __init__(
        self, db: Database, plugin_id: str, cache: ReadCache | None, on_loop: bool, quota: StorageQuota | None
    ) -> None:
        self.db = db
        self.plugin_id = plugin_id
        self.cache = cache
        self.on_loop = on_loop
        self.quota = quota
        self.doc_writes = document_writes(db.dialect)
        self.counter_writes = counter_writes(db.dialect)


class SqlPluginStorage:
    """Key-value documents and atomic bounded counters private to the plugin ``plugin_id``.

    Built as the cached view; :attr:`fresh` is the view for the transaction path, and :attr:`cached`
    leads back. With ``cache_ms`` 0 (the constructor's default) both views read the database. With
    ``reads_on_loop`` and a SQLite database the ``async`` reads run on the event loop, not in a
    worker thread (PostgreSQL always uses threads: its reads wait on the network); writes always
    run in threads.
    """

    __slots__ = ("_fresh", "_other", "_shared", "plugin_id")

    _other: SqlPluginStorage

    def __init__(
        self,
        db: Database,
        plugin_id: str,
        *,
        cache_ms: int = 0,
        max_entries: int = DEFAULT_CACHE_ENTRIES,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        clock: Clock = MONOTONIC,
        reads_on_loop: bool = False,
        quota: StorageQuota | None = None,
    ) -> None:
        if not plugin_id:
            raise ValueError("plugin_id must be non-empty")
        if cache_ms < 0:
            raise ValueError(f"cache_ms must be 0 (off) or positive, got {cache_ms}")
        cache = (
            ReadCache(ttl_ms=cache_ms, max_entries=max_entries, max_bytes=max_bytes, clock=clock)
            if cache_ms else None
        )
        self._shared = _Shared(db, plugin_id, cache, reads_on_loop and db.dialect == "sqlite", quota)
        self.plugin_id = plugin_id
        self._fresh = False
        fresh = object.__new__(SqlPluginStorage)
        fresh._shared, fresh.plugin_id, fresh._fresh, fresh._other = self._shared, plugin_id, True, self
        self._other = fresh

    def __repr__(self) -> str:
        view = "fresh" if self._fresh else "cached"
        return f"SqlPluginStorage(plugin_id={self.plugin_id!r}, view={view})"

    @property
    def fresh(self) -> SqlPluginStorage:
        """The view whose reads always go to the database (for the transaction path)."""
        return self if self._fresh else self._other

    @property
    def cached(self) -> SqlPluginStorage:
        """The view whose reads may come from the cache, up to its TTL old (for display hooks)."""
        return self._other if self._fresh else self

    @property
    def is_fresh(self) -> bool:
        """True for the view that never answers a read from the cache."""
        return self._fresh

    @property
    def reads_on_loop(self) -> bool:
        """True when the ``async`` reads run on the event loop (asked for, and the database is SQLite)."""
        return self._shared.on_loop

    @property
    def cache(self) -> ReadCache | None:
        """The read cache both views share; ``None`` when caching is off."""
        return self._shared.cache

    def _hit(self, slot: _Slot) -> _Value | _Miss:
        cache = self._shared.cache
        if self._fresh or cache is None:
            return MISS
        return cache.lookup(slot)

    # --- documents -------------------------------------------------------------------------------

    def get(self, key: str) -> Any | None:
        """The JSON value stored at ``key``, or ``None`` (a new object on every call)."""
        check_key(key)
        raw = self._hit((_DOC, key))
        if isinstance(raw, _Miss):
            raw = self._read_doc(key)
        return None if raw is None else msgspec.json.decode(cast(bytes, raw))

    @idempotent_read
    def _read_doc(self, key: str) -> bytes | None:
        shared, slot = self._shared, (_DOC, key)
        stamp = shared.cache.stamp(slot) if shared.cache is not None else 0
        learnt = shared.cache.now() if shared.cache is not None else 0.0
        params = {"plugin_id": shared.plugin_id, "key": key}
        with storage_errors(shared.plugin_id), shared.db.single_reads.connect() as conn:
            rows = _DOC_READ.rows(conn, params)  # the primary key: one row at most
        raw = str(rows[0][0]).encode() if rows else None
        if shared.cache is not None:
            shared.cache.fill(slot, raw, stamp, learnt=learnt)
        return raw

    def _read_doc_slots(self, slots: Sequence[_Slot]) -> _Reading:
        return {slot: self._read_doc(slot[1]) for slot in slots}

    def put(self, key: str, value: Any) -> None:
        """Store a JSON-encodable value at ``key``, replacing any earlier one."""
        raw = encode_value(check_key(key), value)
        encoded, now = raw.decode(), utcnow()
        size = document_size(key, raw)
        with self._writing((_DOC, key)) as record:
            with self._transaction() as conn:
                self._store(conn, key, encoded, size, now)
            record(raw)

    def _store(self, conn: Connection, key: str, encoded: str, size: int, now: Any) -> None:
        """Insert or replace the document in ``conn``'s transaction and charge what it changed: a new
        key is inserted (one more document); an existing one is locked, measured and replaced."""
        shared, writes = self._shared, self._shared.doc_writes
        pid = shared.plugin_id
        params = {"pid": pid, "k": key, "v": encoded, "now": now}
        for _ in range(_RACES):
            if conn.execute(writes.insert, params).first() is not None:
                charge(conn, pid, key, shared.quota, {"documents": 1, "document_bytes": size})
                return
            # It exists (or a concurrent write inserted it first): lock it, measure it, replace it.
            old = conn.execute(writes.locked_size, params).scalar_one_or_none()
            if old is None:
                continue  # deleted since: insert it after all
            conn.execute(writes.replace, params)
            grow = size - (document_size(key, b"") + int(old))
            charge(conn, pid, key, shared.quota, {"document_bytes": grow})
            return
        raise busy(pid)

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is absent."""
        check_key(key)
        shared = self._shared
        params = {"pid": shared.plugin_id, "k": key}
        with self._writing((_DOC, key)) as record:
            with self._transaction() as conn:
                old = conn.execute(shared.doc_writes.delete, params).scalar_one_or_none()
                if old is not None:
                    freed = {"documents": -1, "document_bytes": -(document_size(key, b"") + int(old))}
                    charge(conn, shared.plugin_id, key, shared.quota, freed)
            record(None)

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One write's database transaction. A database error before its commit is sent is
        ``StorageUnavailable`` (nothing was written); one from the commit itself is
        ``StorageOutcomeUnknown``: the database may have applied it before the answer was lost, so a
        plugin must not tell its customer it failed (nor undo it)."""
        pid = self._shared.plugin_id
        with storage_errors(pid), self._shared.db.engine.connect() as conn:
            yield conn
            try:
                conn.commit()
            except sa_exc.SQLAlchemyError as exc:
                raise StorageOutcomeUnknown(
                    f"plugin storage for {pid!r}: the write's commit was not acknowledged; it may have "
                    "been applied"
                ) from exc

    @contextmanager
    def _writing(self, slot: _Slot) -> Iterator[Callable[[_Value], None]]:
        cache = self._shared.cache
        if cache is None:
            yield lambda _value: None
        else:
            with cache.writing(slot) as record:
                yield record

    # --- counters --------------------------------------------------------------------------------

    def counter(self, key: str) -> int:
        """The current value of counter ``key`` (0 when it was never touched)."""
        return self.counters([key])[key]

    def counters(self, keys: Sequence[str]) -> dict[str, int]:
        """The values of ``keys`` by key (0 for those never touched): cached ones, then one query."""
        if isinstance(keys, str):
            raise TypeError("counters takes a sequence of keys, not one string")
        found: dict[str, int] = {}
        missing: list[str] = []
        for key in keys:
            check_key(key)
            value = self._hit((_COUNTER, key))
            if isinstance(value, _Miss):
                missing.append(key)
            else:
                found[key] = cast(int, value)
        if missing:
            found.update(self._read_counters(missing))
        return {key: found[key] for key in keys}

    @idempotent_read
    def _read_counters(self, keys: Sequence[str]) -> dict[str, int]:
        shared, cache = self._shared, self._shared.cache
        unique = list(dict.fromkeys(keys))
        stamps = [cache.stamp((_COUNTER, k)) for k in unique] if cache is not None else []
        learnt = cache.now() if cache is not None else 0.0
        values = dict.fromkeys(unique, 0)
        with storage_errors(shared.plugin_id), shared.db.single_reads.connect() as conn:
            for start in range(0, len(unique), IN_CHUNK):
                chunk = unique[start : start + IN_CHUNK]
                params: dict[str, str] = {f"k{i}": key for i, key in enumerate(chunk)}
                params["plugin_id"] = shared.plugin_id
                for key, value in _counters_read(len(chunk)).rows(conn, params):
                    values[key] = int(value)
        if cache is not None:
            for key, stamp in zip(unique, stamps, strict=True):
                cache.fill((_COUNTER, key), values[key], stamp, learnt=learnt)
        return values

    def _read_counter_slots(self, slots: Sequence[_Slot]) -> _Reading:
        return {(_COUNTER, key): value for key, value in self._read_counters([k for _, k in slots]).items()}

    def add(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
        """Atomically add ``delta`` to counter ``key`` and return the new value.

        Raises :class:`~fulcrum_sdk.errors.LimitExceeded` and changes nothing when the result would
        fall below ``lower`` or rise above ``upper``; concurrent callers never both pass a bound.
        """
        check_add(key, delta, lower, upper)
        shared = self._shared
        pid, writes = shared.plugin_id, shared.counter_writes
        fresh_ok = _within(delta, lower, upper)
        params = {"pid": pid, "k": key, "delta": delta, "lower": lower, "upper": upper, "now": utcnow()}
        # An existing counter moves only where the bounds still hold; a missing one starts at 0, so it
        # is inserted as ``delta`` when that is within them (one more counter against the quota).
        moved = writes.moves[lower is not None, upper is not None]
        with self._writing((_COUNTER, key)) as record:
            current: int | None = None
            with self._transaction() as conn:
                for _ in range(_RACES):
                    new = conn.execute(moved, params).scalar_one_or_none()
                    if new is not None:
                        break
                    if fresh_ok:  # missing, or out of bounds: a missing one is inserted, and counted
                        new = conn.execute(writes.insert, params).scalar_one_or_none()
                        if new is not None:
                            charge(conn, pid, key, shared.quota, {"counters": 1})
                            break
                    current = conn.execute(_COUNTER_READ, {"plugin_id": pid, "key": key}).scalar_one_or_none()
                    if current is None and fresh_ok:
                        continue  # deleted since the insert found it: not in this API, but go round
                    if current is None or not _within(int(current) + delta, lower, upper):
                        break  # out of bounds (a fresh counter would already break one)
                    # A concurrent add created it after the update looked: move it now.
                else:
                    raise busy(pid)
            if new is None:
                current = int(current or 0)
                record(current)  # nothing changed, and the same transaction just read the value
                raise LimitExceeded(key, current, delta, lower, upper)
            record(int(new))
        return int(new)

    # --- async -----------------------------------------------------------------------------------
    # A hit returns before the first ``await``, so the coroutine completes on its first ``send``.

    def _refresh(self, slots: Iterable[_Slot], read: Callable[[Sequence[_Slot]], _Reading]) -> None:
        """Start one background re-read of those ``slots`` not already being read (on a running loop)."""
        cache, loop = self._shared.cache, _running_loop()
        if cache is None or loop is None:
            return  # no loop to run it on (a plain ``send``): the entry simply expires at its TTL
        idle = [slot for slot in dict.fromkeys(slots) if not cache.flights.busy(slot, loop)]
        if idle:
            cache.flights.start(loop, cache, idle, read, refresh=self.plugin_id, on_loop=self._shared.on_loop)

    async def _read_missing(
        self, slots: Sequence[_Slot], read: Callable[[Sequence[_Slot]], _Reading]
    ) -> Mapping[_Slot, _Value]:
        """Read cache misses: the fresh view alone; the cached view joining reads already in flight.

        On the loop (``reads_on_loop``) a read ends before anything else runs, so there is nothing
        in flight to share: it reads at once, then lets the loop run others (and a deadline reach it).
        """
        cache, loop = self._shared.cache, _running_loop()
        if loop is not None and self._shared.on_loop:
            try:
                return read(slots)
            finally:
                await asyncio.sleep(0)
        if self._fresh or cache is None or loop is None:
            return await _in_thread(_bounded_read, read, slots, abandon=True)
        flights: list[asyncio.Task[_Reading]] = []
        alone: list[_Slot] = []
        for slot in dict.fromkeys(slots):
            task = cache.flights.joinable(slot, cache.stamp(slot), loop)
            if task is None:
                alone.append(slot)
            elif task not in flights:
                flights.append(task)
        if alone:
            flights.append(cache.flights.start(loop, cache, alone, read))
        if len(flights) == 1:
            return await asyncio.shield(flights[0])  # a cancelled caller leaves the read to the others
        found: dict[_Slot, _Value] = {}
        for task in flights:
            found.update(await asyncio.shield(task))
        return found

    async def aget(self, key: str) -> Any | None:
        """:meth:`get`; a cache hit completes without suspending (and may start a refresh-ahead)."""
        if key.__class__ is not str or not 0 < len(key) <= MAX_KEY_LENGTH:
            check_key(key)  # raises, naming what is wrong
        slot = (_DOC, key)
        cache = self._shared.cache
        raw, due = (MISS, False) if self._fresh or cache is None else cache.probe(slot)
        if due:
            self._refresh((slot,), self._read_doc_slots)
        if isinstance(raw, _Miss):
            raw = (await self._read_missing((slot,), self._read_doc_slots))[slot]
        return None if raw is None else msgspec.json.decode(cast(bytes, raw))

    async def aput(self, key: str, value: Any) -> None:
        """:meth:`put`, in a worker thread."""
        await _in_thread(lambda: self.put(key, value))

    async def adelete(self, key: str) -> None:
        """:meth:`delete`, in a worker thread."""
        await _in_thread(self.delete, key)

    async def acounter(self, key: str) -> int:
        """:meth:`counter`; a cache hit completes without suspending."""
        return (await self.acounters([key]))[key]

    async def acounters(self, keys: Sequence[str]) -> dict[str, int]:
        """:meth:`counters`; when every key is cached it completes without suspending."""
        if isinstance(keys, str):
            raise TypeError("acounters takes a sequence of keys, not one string")
        for key in keys:
            if key.__class__ is not str or not 0 < len(key) <= MAX_KEY_LENGTH:
                check_key(key)  # raises, naming what is wrong (a str subclass passes, as it does there)
        cache = self._shared.cache
        if self._fresh or cache is None:
            found: dict[str, _Value] = {}
            missing = [(_COUNTER, key) for key in keys]
        else:
            found, missing, due = cache.probe_keys(_COUNTER, keys)
            if due:
                self._refresh(due, self._read_counter_slots)
            if not missing:
                return cast(dict[str, int], found)  # already by key, in the order of first mention
        read = await self._read_missing(missing, self._read_counter_slots)
        return {key: cast(int, found[key] if key in found else read[(_COUNTER, key)]) for key in keys}

    async def aadd(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
        """:meth:`add`, in a worker thread."""
        return await _in_thread(lambda: self.add(key, delta, lower=lower, upper=upper))


_READ_PLACES = 32
_READS = threading.BoundedSemaphore(_READ_PLACES)
"""Storage reads of display hooks in worker threads at once in this process, hung ones included: a
database that hangs ties up at most this many threads (an abandoned read keeps its thread)."""


def _within(value: int, lower: int | None, upper: int | None) -> bool:
    return (lower is None or value >= lower) and (upper is None or value <= upper)


async def _call(read: Callable[[Sequence[_Slot]], _Reading], slots: Sequence[_Slot]) -> _Reading:
    """``read(slots)`` on the event loop, as a flight's task (the task's own step is the yield)."""
    return read(slots)


def _bounded_read(read: Callable[[Sequence[_Slot]], _Reading], slots: Sequence[_Slot]) -> _Reading:
    """(worker thread) ``read(slots)`` holding a read place; none free: ``DataUnavailable`` at once,
    which leaves the calling plugin out of this response without charging its breaker."""
    if not _READS.acquire(blocking=False):
        raise _host_unavailable("plugin storage")
    try:
        return read(slots)
    finally:
        _READS.release()


async def _in_thread(fn: Callable[..., _T], *args: Any, abandon: bool = False) -> _T:
    """Run a blocking storage call in a worker thread.

    A read may be abandoned when its caller is cancelled (the dispatcher's deadline): its result,
    still cached when it arrives, is no longer needed. A write is never abandoned, so the cache is
    updated after the database even when the hook that asked for it has given up.
    """
    return await host_threads.run_sync(fn, *args, abandon_on_cancel=abandon)
