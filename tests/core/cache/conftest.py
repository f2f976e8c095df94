"""Fixtures shared by the storage-cache tests: a virtual clock, this worker's cached storage, another's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.data.storage import SqlPluginStorage
from fulcrum_core.dispatch.clock import VirtualClock
from sqlalchemy import event

TTL_MS = 1000
"""The cache lifetime every fixture here uses (one virtual second)."""


@pytest.fixture
def clock() -> VirtualClock:
    """The cache's clock, moved by hand."""
    return VirtualClock(100.0)


@pytest.fixture
def storage(db: Database, clock: VirtualClock) -> SqlPluginStorage:
    """This worker's storage for plugin ``p``, caching reads for one (virtual) second."""
    return SqlPluginStorage(db, "p", cache_ms=TTL_MS, clock=clock)


@pytest.fixture
def other(db: Database) -> SqlPluginStorage:
    """Another worker's storage for the same plugin: its writes reach the database, not our cache."""
    return SqlPluginStorage(db, "p")


@contextmanager
def statements(db: Database, *, only: str = "") -> Iterator[list[str]]:
    """Record every SQL statement sent to ``db`` inside the block (those starting with ``only``)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(only):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
