"""Durable state for a plugin, kept by the platform and scoped to that plugin alone.

Plugins must not keep state in module globals: workers are many and restart. ``PluginStorage``
offers JSON documents and atomic bounded counters (stock, redemptions per customer, yearly caps).
The host backs it with the platform database; :class:`MemoryStorage` backs it in tests.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import msgspec

from fulcrum_sdk.errors import LimitExceeded

__all__ = ["MemoryStorage", "PluginStorage"]


class PluginStorage(Protocol):
    """Key-value storage private to one plugin. Keys are at most 200 characters."""

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

    def add(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
        """Atomically add ``delta`` to counter ``key`` and return the new value.

        Raises :class:`~fulcrum_sdk.errors.LimitExceeded` and changes nothing when the result would
        fall below ``lower`` or rise above ``upper``; concurrent callers never both pass a bound.
        """
        ...


class MemoryStorage:
    """An in-memory :class:`PluginStorage` for tests and the harness; thread-safe."""

    def __init__(self) -> None:
        self._docs: dict[str, bytes] = {}
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        raw = self._docs.get(key)
        return None if raw is None else msgspec.json.decode(raw)

    def put(self, key: str, value: Any) -> None:
        self._docs[key] = msgspec.json.encode(value)

    def delete(self, key: str) -> None:
        self._docs.pop(key, None)

    def counter(self, key: str) -> int:
        return self._counters.get(key, 0)

    def add(self, key: str, delta: int, *, lower: int | None = None, upper: int | None = None) -> int:
        with self._lock:
            current = self._counters.get(key, 0)
            new = current + delta
            if (lower is not None and new < lower) or (upper is not None and new > upper):
                raise LimitExceeded(key, current, delta, lower, upper)
            self._counters[key] = new
            return new
