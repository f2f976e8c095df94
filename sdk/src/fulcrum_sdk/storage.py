"""Durable state for a plugin, kept by the platform and scoped to that plugin alone.

Plugins must not keep state in module globals: workers are many and restart. ``PluginStorage``
offers JSON documents and atomic bounded counters (stock, redemptions per customer, yearly caps),
each with a plain and an ``async`` form. The host backs it with the platform database;
:class:`MemoryStorage` backs it in tests.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Annotated, Any, Protocol

import msgspec

from fulcrum_sdk.errors import LimitExceeded, QuotaExceeded

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_VALUE_BYTES",
    "MemoryStorage",
    "PluginStorage",
    "QuotaLimit",
    "StorageQuota",
    "document_size",
]

MAX_KEY_LENGTH = 200
"""The longest storage key, in characters."""

MAX_VALUE_BYTES = 64 * 1024
"""The largest document, in bytes of JSON. The host reads documents on the page's hot path (on the
event loop itself for SQLite) and caches them per worker, so one plugin's huge document would stall
every customer's page; keep large data in your own systems and store a reference."""


def check_key(key: str) -> str:
    """``key`` when it is a storage key (1–200 characters of text), else ``ValueError``: the rule of
    the host's storage and of :class:`MemoryStorage` alike."""
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"storage key is {len(key)} characters; at most {MAX_KEY_LENGTH} are allowed")
    return key


def check_add(key: str, delta: int, lower: int | None, upper: int | None) -> None:
    """Refuse the arguments of an ``add`` that no storage takes: a bad key, a ``delta`` that is not an
    ``int`` (``True``, ``1.5``: ``TypeError``), a ``lower`` bound above ``upper`` (``ValueError``)."""
    check_key(key)
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError(f"delta must be an int, got {type(delta).__name__}")
    if lower is not None and upper is not None and lower > upper:
        raise ValueError(f"lower bound {lower} is above upper bound {upper}")


def encode_value(key: str, value: Any) -> bytes:
    """``value`` as the JSON document stored at ``key``; ``TypeError`` when JSON cannot hold it,
    ``ValueError`` when it is larger than :data:`MAX_VALUE_BYTES`."""
    try:
        raw = msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"value for storage key {key!r} is not JSON-encodable: {exc}") from None
    if len(raw) > MAX_VALUE_BYTES:
        raise ValueError(
            f"value for storage key {key!r} is {len(raw)} bytes as JSON; at most {MAX_VALUE_BYTES} are "
            "allowed (store large data in your own systems and keep a reference here)"
        )
    return raw


QuotaLimit = Annotated[int, msgspec.Meta(ge=0, le=10**15)]
"""One measure's limit: at most 10^15, well inside the database's 64-bit integers (a larger one would
make every write's check overflow)."""


class StorageQuota(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The most one plugin may keep: documents, their bytes (key and JSON, :func:`document_size`) and
    counters. A write that would grow a measure past its limit raises
    :class:`~fulcrum_sdk.errors.QuotaExceeded` and changes nothing; one that does not grow it is taken.
    The defaults hold a small document and a counter for each of ten million customers."""

    documents: QuotaLimit = 20_000_000
    document_bytes: QuotaLimit = 4 * 1024**3
    counters: QuotaLimit = 20_000_000


def document_size(key: str, raw: bytes) -> int:
    """What a document counts against :attr:`StorageQuota.document_bytes`: its key's and its JSON's
    UTF-8 bytes."""
    return len(key.encode()) + len(raw)


class PluginStorage(Protocol):
    """Key-value storage private to one plugin. Keys are at most 200 characters, documents at most
    64 KiB of JSON (:data:`MAX_VALUE_BYTES`).

    Every operation has an ``async`` twin (``aget``, ``aput``, ``adelete``, ``acounter``,
    ``acounters``, ``aadd``) with the same meaning; ``async def`` hooks should use those, so the
    host can answer a read without a thread.

    **Freshness.** In the display hooks (``home_slot_offers``, ``search``, ``feed_items``) reads may
    be served from the host's in-process cache and be up to ``storage_cache_ms`` old (1 s by
    default): good enough to show "12 left", never enough to decide whether one is left. Writes are
    always durable in the database before they return, and this worker's next read sees them. Reads
    in ``execute_transaction`` (and anything else on the transaction path) always go to the database.
    Even a fresh read can be outdated by the time you act on it, so a limit (stock, a per-customer
    allowance, an annual cap) is enforced only by an atomic bounded :meth:`add`, never by reading a
    counter and then writing.
    """

    def get(self, key: str) -> Any | None:
        """The JSON value stored at ``key``, or ``None``."""
        ...

    def put(self, key: str, value: Any) -> None:
        """Store a JSON-encodable value at ``key``, replacing any earlier one."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is absent."""
        ...

    def counter(self, key: str) -> int:
        """The current value of counter ``key`` (0 when it was never touched)."""
        ...

    def counters(self, keys: Sequence[str]) -> dict[str, int]:
        """The values of several counters in one read, by key (0 for those never touched)."""
        ...

    def add(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
        """Atomically add ``delta`` to counter ``key`` and return the new value.

        Raises :class:`~fulcrum_sdk.errors.LimitExceeded` and changes nothing when the result would
        fall below ``lower`` or rise above ``upper``; concurrent callers never both pass a bound.
        """
        ...

    async def aget(self, key: str) -> Any | None:
        """:meth:`get` for ``async def`` hooks."""
        ...

    async def aput(self, key: str, value: Any) -> None:
        """:meth:`put` for ``async def`` hooks."""
        ...

    async def adelete(self, key: str) -> None:
        """:meth:`delete` for ``async def`` hooks."""
        ...

    async def acounter(self, key: str) -> int:
        """:meth:`counter` for ``async def`` hooks."""
        ...

    async def acounters(self, keys: Sequence[str]) -> dict[str, int]:
        """:meth:`counters` for ``async def`` hooks."""
        ...

    async def aadd(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
        """:meth:`add` for ``async def`` hooks (the same atomic bounds)."""
        ...


class MemoryStorage:
    """An in-memory :class:`PluginStorage` for tests and the harness; thread-safe, always fresh. It
    takes the keys and arguments the host's storage takes, and refuses the others as it does. Given a
    ``quota``, it refuses writes past it as the host does (none by default)."""

    def __init__(self, quota: StorageQuota | None = None) -> None:
        self._docs: dict[str, bytes] = {}
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()
        self._quota = quota
        self._bytes = 0

    def _charge(self, key: str, what: str, used: int, grow: int) -> None:
        """Refuse growing ``what`` by ``grow`` past the quota (under the lock)."""
        limit = None if self._quota is None else getattr(self._quota, what)
        if limit is not None and grow > 0 and used + grow > limit:
            raise QuotaExceeded(key, what, used, limit)

    def get(self, key: str) -> Any | None:
        """The JSON value stored at ``key``, or ``None`` (a new object on every call)."""
        raw = self._docs.get(check_key(key))
        return None if raw is None else msgspec.json.decode(raw)

    def put(self, key: str, value: Any) -> None:
        """Store a JSON-encodable value at ``key``, replacing any earlier one."""
        raw = encode_value(check_key(key), value)
        with self._lock:
            old = self._docs.get(key)
            grow = document_size(key, raw) - (0 if old is None else document_size(key, old))
            self._charge(key, "documents", len(self._docs), int(old is None))
            self._charge(key, "document_bytes", self._bytes, grow)
            self._docs[key] = raw
            self._bytes += grow

    def delete(self, key: str) -> None:
        """Remove ``key``; no error when it is absent."""
        with self._lock:
            old = self._docs.pop(check_key(key), None)
            if old is not None:
                self._bytes -= document_size(key, old)

    def counter(self, key: str) -> int:
        """The current value of counter ``key`` (0 when it was never touched)."""
        return self._counters.get(check_key(key), 0)

    def counters(self, keys: Sequence[str]) -> dict[str, int]:
        """The values of ``keys`` by key (0 for those never touched)."""
        if isinstance(keys, str):
            raise TypeError("counters takes a sequence of keys, not one string")
        for key in keys:
            check_key(key)
        with self._lock:
            return {key: self._counters.get(key, 0) for key in keys}

    def add(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
        """Atomically add ``delta`` to counter ``key``; :class:`LimitExceeded` outside the bounds."""
        check_add(key, delta, lower, upper)
        with self._lock:
            current = self._counters.get(key, 0)
            new = current + delta
            if (lower is not None and new < lower) or (upper is not None and new > upper):
                raise LimitExceeded(key, current, delta, lower, upper)
            self._charge(key, "counters", len(self._counters), int(key not in self._counters))
            self._counters[key] = new
            return new

    async def aget(self, key: str) -> Any | None:
        """:meth:`get`, without suspending."""
        return self.get(key)

    async def aput(self, key: str, value: Any) -> None:
        """:meth:`put`, without suspending."""
        self.put(key, value)

    async def adelete(self, key: str) -> None:
        """:meth:`delete`, without suspending."""
        self.delete(key)

    async def acounter(self, key: str) -> int:
        """:meth:`counter`, without suspending."""
        return self.counter(key)

    async def acounters(self, keys: Sequence[str]) -> dict[str, int]:
        """:meth:`counters`, without suspending."""
        if isinstance(keys, str):
            raise TypeError("acounters takes a sequence of keys, not one string")
        return self.counters(keys)

    async def aadd(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
        """:meth:`add`, without suspending."""
        return self.add(key, delta, lower=lower, upper=upper)
