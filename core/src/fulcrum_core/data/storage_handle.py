"""``StorageHandle``: what a plugin's ``ctx.storage`` is — its own storage's operations, nothing more.

A :class:`~fulcrum_core.data.storage.SqlPluginStorage` view holds the database (every table: the
consents name the bank's customers) and the plugin id its statements use, in attributes a plugin could
follow or set to read and write another plugin's keys. A plugin is handed this handle instead: the
view's operations, bound, and its plugin id and freshness as plain values that nothing reads back.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fulcrum_core.data.storage import SqlPluginStorage

__all__ = ["StorageHandle"]


class StorageHandle:
    """The :class:`~fulcrum_sdk.storage.PluginStorage` operations of one storage view, and no way back
    to the view: setting an attribute changes only what this handle's holder calls."""

    __slots__ = (
        "aadd", "acounter", "acounters", "add", "adelete", "aget", "aput", "counter", "counters", "delete",
        "get", "is_fresh", "plugin_id", "put",
    )

    get: Callable[[str], Any]
    put: Callable[[str, Any], None]
    delete: Callable[[str], None]
    counter: Callable[[str], int]
    counters: Callable[[Sequence[str]], dict[str, int]]
    add: Callable[..., int]
    aget: Callable[[str], Coroutine[Any, Any, Any]]
    aput: Callable[[str, Any], Coroutine[Any, Any, None]]
    adelete: Callable[[str], Coroutine[Any, Any, None]]
    acounter: Callable[[str], Coroutine[Any, Any, int]]
    acounters: Callable[[Sequence[str]], Coroutine[Any, Any, dict[str, int]]]
    aadd: Callable[..., Coroutine[Any, Any, int]]

    def __init__(self, storage: SqlPluginStorage) -> None:
        self.get, self.put, self.delete = storage.get, storage.put, storage.delete
        self.counter, self.counters, self.add = storage.counter, storage.counters, storage.add
        self.aget, self.aput, self.adelete = storage.aget, storage.aput, storage.adelete
        self.acounter, self.acounters, self.aadd = storage.acounter, storage.acounters, storage.aadd
        self.plugin_id: str = storage.plugin_id
        self.is_fresh: bool = storage.is_fresh

    def __repr__(self) -> str:
        return f"StorageHandle(plugin_id={self.plugin_id!r}, view={'fresh' if self.is_fresh else 'cached'})"
