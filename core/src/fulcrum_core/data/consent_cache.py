"""``ConsentCache``: each worker's short-lived memory of customers' live consents.

Partner plugins need the customer's live consents on every request (``/v1/home`` calls them all);
reading the ``consents`` table each time, in a worker thread, is a large share of that request. A
cache entry holds what one read found — each live consent's plugin, scopes and expiry — and is
served for ``consent_cache_ms`` (a monotonic clock), filtered by the request's ``now`` so a consent
that expires while cached is not served. Entries are bounded (least recently used go first).

Every write through :class:`~fulcrum_core.data.consents.ConsentStore` drops the customer's entry in
every cache attached to that :class:`~fulcrum_core.data.db.Database` in this process, so in one
worker a revocation applies to the next request; other workers see it within ``consent_cache_ms``.

On the event loop (:meth:`ConsentCache.load`, :meth:`ConsentCache.refresh`) concurrent misses for one
customer share one database read, and a hit on an entry past its refresh point (within
:data:`REFRESH_AFTER` of the lifetime, fixed per customer) starts one background re-read of that
customer, so a busy customer's entry is replaced before it lapses instead of every request in flight
missing together. A read (miss or refresh) that an invalidation overtook is never stored nor shared
with a later request; nothing older than ``consent_cache_ms`` is served.

With ``reads_on_loop`` (the host sets it for SQLite) a read runs on the event loop instead of a worker
thread — a miss reads at once and then yields to the loop once; a refresh reads in its own task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final, NamedTuple

from fulcrum_core import host_threads
from fulcrum_core.dispatch.leftovers import host_task

if TYPE_CHECKING:
    from fulcrum_core.data.db import Database

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_MAX_READS",
    "REFRESH_AFTER",
    "ConsentCache",
    "ConsentReadsBusy",
    "LiveConsent",
    "attach",
    "invalidate",
    "refresh_fraction",
    "scopes_at",
]

log = logging.getLogger("fulcrum.consents")

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_READS = 16


class ConsentReadsBusy(RuntimeError):
    """Every consent-read place is held by a read still waiting for the database."""

REFRESH_AFTER: Final = (0.6, 0.9)
"""Bounds of the fraction of the lifetime after which a hit on the loop also starts a background re-read.

As for the storage cache: each customer's point is fixed within them by a hash of the customer, so
entries filled together are not re-read together; at the default 1 s one indexed read has 100-400 ms
to land, and a busy customer costs one read per 600-900 ms.
"""


def refresh_fraction(customer_ref: str) -> float:
    """The fraction of the lifetime after which the customer's entry is due a refresh."""
    low, high = REFRESH_AFTER
    return low + (high - low) * (zlib.crc32(customer_ref.encode()) % 1024) / 1024


class LiveConsent(NamedTuple):
    """One authorised consent as read: whose plugin, which scopes, until when."""

    plugin_id: str
    scopes: frozenset[str]
    expires_at: datetime


class _Entry(NamedTuple):
    consents: tuple[LiveConsent, ...]
    read_at: datetime  # the ``now`` of the read: the entry says nothing about earlier instants
    fresh_until: float  # on the cache's clock
    refresh_at: float  # on the cache's clock: a hit from here on starts a background re-read


Reader = Callable[[], Sequence[LiveConsent]]
"""A blocking read of one customer's live consents (run in a worker thread)."""


def scopes_at(consents: Iterable[LiveConsent], now: datetime) -> dict[str, frozenset[str]]:
    """Plugin id → union of the scopes of ``consents`` still unexpired at ``now``."""
    live: dict[str, frozenset[str]] = {}
    for consent in consents:
        if consent.expires_at > now:
            live[consent.plugin_id] = live.get(consent.plugin_id, frozenset()) | consent.scopes
    return live


class ConsentCache:
    """Customer → live consents, fresh for ``ttl_ms`` and at most ``max_entries`` customers; thread-safe.

    ``ttl_ms=0`` disables it: nothing is stored and every lookup misses.
    """

    def __init__(
        self,
        ttl_ms: int,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_reads: int = DEFAULT_MAX_READS,
        clock: Callable[[], float] = time.monotonic,
        reads_on_loop: bool = False,
    ) -> None:
        if ttl_ms < 0:
            raise ValueError("ttl_ms must be >= 0")
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.ttl = ttl_ms / 1000
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        # Bumped by every invalidation: a read that started before one must not store what it found.
        self._epoch = 0
        # Customer -> (read in flight on the event loop, the epoch it started in); loop thread only.
        self._flights: dict[str, tuple[asyncio.Task[Sequence[LiveConsent]], int]] = {}
        # Reads in worker threads at once, hung ones included: a database that hangs ties up at most
        # this many threads; past that a read fails at once (the request's consents are then unknown).
        self._reads = threading.BoundedSemaphore(max_reads)
        self.max_reads = max_reads
        # Reads on the event loop rather than in worker threads (a local SQLite read: tens of µs).
        self.reads_on_loop = reads_on_loop

    @property
    def enabled(self) -> bool:
        """False when ``ttl_ms`` is 0."""
        return self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, customer_ref: str, now: datetime) -> dict[str, frozenset[str]] | None:
        """The customer's live scopes by plugin at ``now``, or ``None`` when there is no fresh entry."""
        return self.probe(customer_ref, now)[0]

    def probe(self, customer_ref: str, now: datetime) -> tuple[dict[str, frozenset[str]] | None, bool]:
        """:meth:`get`, and whether the entry served is past its refresh point (a re-read is due)."""
        if not self.enabled:
            return None, False
        with self._lock:
            entry = self._entries.get(customer_ref)
            if entry is None:
                return None, False
            clock = self._clock()
            if clock >= entry.fresh_until:
                del self._entries[customer_ref]
                return None, False
            if now < entry.read_at:  # asked about an instant before the read: it may have changed since
                return None, False
            self._entries.move_to_end(customer_ref)
        return scopes_at(entry.consents, now), clock >= entry.refresh_at

    def token(self) -> int:
        """Take before reading the database; hand to :meth:`put` so a read raced by a write is not kept."""
        return self._epoch

    def put(
        self,
        customer_ref: str,
        consents: Iterable[LiveConsent],
        read_at: datetime,
        token: int,
        *,
        learnt: float | None = None,
    ) -> None:
        """Remember what a read at ``read_at`` found, unless a write invalidated anything since ``token``.

        ``learnt`` (the cache's clock before the read began; default now) starts the lifetime.
        """
        if not self.enabled:
            return
        start = self._clock() if learnt is None else learnt
        entry = _Entry(
            tuple(consents), read_at, start + self.ttl, start + self.ttl * refresh_fraction(customer_ref)
        )
        with self._lock:
            if token != self._epoch:
                return
            self._entries[customer_ref] = entry
            self._entries.move_to_end(customer_ref)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    async def load(self, customer_ref: str, now: datetime, read: Reader) -> dict[str, frozenset[str]]:
        """After a miss: the customer's live scopes at ``now`` from ``read`` in a worker thread (or on
        the loop, with ``reads_on_loop``), stored.

        Concurrent callers for one customer share one read, unless an invalidation came between its
        start and their call (then they start a new one). A failed read raises to every sharer and
        stores nothing.
        """
        loop = _running_loop()
        if loop is not None and self.reads_on_loop:
            # Ends before anything else runs on the loop: there is no read in flight to share.
            token, learnt = self.token(), self._clock()
            try:
                found = read()
                self.put(customer_ref, found, now, token, learnt=learnt)
            finally:
                await asyncio.sleep(0)
            return scopes_at(found, now)
        if not self.enabled or loop is None:
            token, learnt = self.token(), self._clock()
            found = await host_threads.run_sync(self._bounded, read, abandon_on_cancel=True)
            self.put(customer_ref, found, now, token, learnt=learnt)
            return scopes_at(found, now)
        flight = self._flights.get(customer_ref)
        if flight is None or flight[1] != self._epoch or flight[0].done() or flight[0].get_loop() is not loop:
            task = self._start(loop, customer_ref, now, read, refresh=False)
        else:
            task = flight[0]
        # Sharers may ask about an instant before the read's; ``scopes_at`` then errs toward fewer scopes.
        return scopes_at(await asyncio.shield(task), now)

    def refresh(self, customer_ref: str, now: datetime, read: Reader) -> bool:
        """Start one background re-read of the customer unless one is in flight; False without a loop.

        Called on a hit past the refresh point. The re-read replaces the entry when it lands, unless
        an invalidation came first; if it fails, that is logged and the entry is served to its end.
        """
        loop = _running_loop()
        if not self.enabled or loop is None:
            return False
        flight = self._flights.get(customer_ref)
        if flight is not None and not flight[0].done() and flight[0].get_loop() is loop:
            return False
        self._start(loop, customer_ref, now, read, refresh=True)
        return True

    def pending(self) -> list[asyncio.Task[Sequence[LiveConsent]]]:
        """The reads started that have not landed yet (what a stopping host waits for)."""
        return [task for task, _ in self._flights.values() if not task.done()]

    def in_flight(self, customer_ref: str) -> asyncio.Task[Sequence[LiveConsent]] | None:
        """The read of the customer's consents started on the loop that has not landed yet, if any."""
        flight = self._flights.get(customer_ref)
        return flight[0] if flight is not None and not flight[0].done() else None

    def _start(
        self,
        loop: asyncio.AbstractEventLoop,
        customer_ref: str,
        now: datetime,
        read: Reader,
        *,
        refresh: bool,
    ) -> asyncio.Task[Sequence[LiveConsent]]:
        token, learnt = self._epoch, self._clock()

        async def run() -> Sequence[LiveConsent]:
            found = read() if self.reads_on_loop else await host_threads.run_sync(self._bounded, read)
            self.put(customer_ref, found, now, token, learnt=learnt)
            return found

        task = host_task(run(), loop=loop)  # the host's, even when a plugin's read started it
        self._flights[customer_ref] = (task, token)  # also keeps the task from being collected
        task.add_done_callback(lambda done: self._landed(done, customer_ref, refresh))
        return task

    def _bounded(self, read: Reader) -> Sequence[LiveConsent]:
        """(worker thread) ``read`` while holding one of ``max_reads`` places; none free: fail at once."""
        if not self._reads.acquire(blocking=False):
            raise ConsentReadsBusy(f"{self.max_reads} consent reads are still waiting for the database")
        try:
            return read()
        finally:
            self._reads.release()

    def _landed(self, task: asyncio.Task[Sequence[LiveConsent]], customer_ref: str, refresh: bool) -> None:
        flight = self._flights.get(customer_ref)
        if flight is not None and flight[0] is task:
            del self._flights[customer_ref]
        if task.cancelled():
            return
        exc = task.exception()  # also marks a miss's failure as retrieved when every sharer gave up
        if exc is not None and refresh:
            log.warning(
                "refreshing cached consents failed; the cached entry is served until it lapses", exc_info=exc
            )
            with self._lock:
                entry = self._entries.get(customer_ref)
                if entry is not None:  # no more refreshes of this entry: it simply lapses
                    self._entries[customer_ref] = entry._replace(refresh_at=entry.fresh_until)

    def invalidate(self, customer_ref: str) -> None:
        """Forget the customer's entry (their consents changed)."""
        with self._lock:
            self._epoch += 1
            self._entries.pop(customer_ref, None)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._epoch += 1
            self._entries.clear()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running this code, or ``None`` (no loop, or another async library)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


# The caches reading each Database in this process; weak, so a cache goes with its host.
_ATTACHED: weakref.WeakKeyDictionary[Database, weakref.WeakSet[ConsentCache]] = weakref.WeakKeyDictionary()
_ATTACHED_LOCK = threading.Lock()


def attach(db: Database, cache: ConsentCache) -> ConsentCache:
    """Have every ``ConsentStore`` write on ``db`` in this process invalidate ``cache``; returns it."""
    with _ATTACHED_LOCK:
        _ATTACHED.setdefault(db, weakref.WeakSet()).add(cache)
    return cache


def invalidate(db: Database, customer_ref: str) -> None:
    """Drop ``customer_ref`` from every cache attached to ``db`` (after a write to their consents)."""
    with _ATTACHED_LOCK:
        caches = list(_ATTACHED.get(db, ()))
    for cache in caches:
        cache.invalidate(customer_ref)
