"""A leaked SQLite connection fails the suite on every supported Python, not only where sqlite3 warns."""

from __future__ import annotations

import gc
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text


def _forget(held: list[object]) -> None:
    """Drop the last references to what ``held`` holds and let the collector finish it."""
    held.clear()
    gc.collect()


def test_a_sqlite3_connection_left_to_the_collector_warns() -> None:
    """sqlite3 warns about an unclosed connection only from Python 3.13; the suite warns on 3.11 too."""
    held: list[object] = [sqlite3.connect(":memory:")]
    with pytest.warns(ResourceWarning, match="unclosed database"):
        _forget(held)


def test_a_closed_sqlite3_connection_does_not_warn() -> None:
    """Closing a connection is what keeps the suite quiet (warnings are errors here)."""
    conn = sqlite3.connect(":memory:")
    conn.close()
    held: list[object] = [conn]
    del conn
    _forget(held)


def test_an_engine_dropped_without_dispose_warns(tmp_path: Path) -> None:
    """An engine's pooled connection is a sqlite3 connection too: an engine never disposed leaks it."""
    engine = create_engine(f"sqlite:///{tmp_path / 'leak.db'}")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    held: list[object] = [engine]
    del engine, conn
    with pytest.warns(ResourceWarning, match="unclosed database"):
        _forget(held)


def test_a_disposed_engine_does_not_warn(tmp_path: Path) -> None:
    """Disposing the engine closes its pooled connections."""
    engine = create_engine(f"sqlite:///{tmp_path / 'closed.db'}")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    held: list[object] = [engine]
    del engine, conn
    _forget(held)
