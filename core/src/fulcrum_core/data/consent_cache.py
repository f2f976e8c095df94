"""``ConsentCache``: each worker's short-lived memory of customers' live consents.

Partner plugins need the customer's live consents on every request (``/v1/home`` calls them all);
reading the ``consents`` table each time, in a worker thread, is a large share of that request. A
cache entry holds what one read found — each live consent's plugin, scopes and expiry — and is
served for ``consent_cache_ms`` (a monotonic clock), filtered by the request's ``now`` so a consent
that expires while cached is not served. Entries are bounded (least recently used go first).

Every write through :class:`~fulcrum_core.data.consents.ConsentStore` drops the customer's entry in
every cache attached to that :class:`~fulcrum_core.data.db.Database` in this process, so in one
worker a revocation applies to the next request; other workers see it within ``consent_cache_ms``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from fulcrum_core.data.db import Database

__all__ = ["DEFAULT_MAX_ENTRIES", "ConsentCache", "LiveConsent", "attach", "invalidate", "scopes_at"]

DEFAULT_MAX_ENTRIES = 10_000


class LiveConsent(NamedTuple):
    """One authorised consent as read: whose plugin, which scopes, until when."""

    plugin_id: str
    scopes: frozenset[str]
    expires_at: datetime


class _Entry(NamedTuple):
    consents: tuple[LiveConsent, ...]
    read_at: datetime  # the ``now`` of the read: the entry says nothing about earlier instants
    fresh_until: float  # on the cache's clock


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
        clock: Callable[[], float] = time.monotonic,
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

    @property
    def enabled(self) -> bool:
        """False when ``ttl_ms`` is 0."""
        return self.ttl > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, customer_ref: str, now: datetime) -> dict[str, frozenset[str]] | None:
        """The customer's live scopes by plugin at ``now``, or ``None`` when there is no fresh entry."""
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(customer_ref)
            if entry is None:
                return None
            if self._clock() >= entry.fresh_until:
                del self._entries[customer_ref]
                return None
            if now < entry.read_at:  # asked about an instant before the read: it may have changed since
                return None
            self._entries.move_to_end(customer_ref)
        return scopes_at(entry.consents, now)

    def token(self) -> int:
        """Take before reading the database; hand to :meth:`put` so a read raced by a write is not kept."""
        return self._epoch

    def put(self, customer_ref: str, consents: Iterable[LiveConsent], read_at: datetime, token: int) -> None:
        """Remember what a read at ``read_at`` found, unless a write invalidated anything since ``token``."""
        if not self.enabled:
            return
        entry = _Entry(tuple(consents), read_at, self._clock() + self.ttl)
        with self._lock:
            if token != self._epoch:
                return
            self._entries[customer_ref] = entry
            self._entries.move_to_end(customer_ref)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

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
