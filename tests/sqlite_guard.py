"""Python 3.13's warning about a SQLite connection left open, on the older Pythons the suite runs on.

From 3.13, ``sqlite3`` emits ``ResourceWarning: unclosed database`` when a connection that was never
closed is collected (an engine not disposed, a connection dropped on an error path); the suite turns it
into an error. Before 3.13 the same leak is silent, so CI (3.11) could not catch it: :func:`install`
makes ``sqlite3.connect`` return connections that warn in the same words.
"""

from __future__ import annotations

import sqlite3
import sqlite3.dbapi2
import sys
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["install", "uninstall"]

_original: Callable[..., sqlite3.Connection] | None = None


class _WarnIfUnclosed(sqlite3.Connection):
    """A connection that warns, as 3.13's does, when it is collected without having been closed."""

    _open = False  # a connect that failed half-way has nothing to close

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open = True

    def close(self) -> None:
        self._open = False
        super().close()

    def __del__(self) -> None:
        if self._open:
            self._open = False
            warnings.warn(f"unclosed database in {self!r}", ResourceWarning, stacklevel=1)


def _connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    assert _original is not None
    kwargs.setdefault("factory", _WarnIfUnclosed)
    return _original(*args, **kwargs)


def install() -> None:
    """Make connections opened from now on warn when leaked (a no-op where sqlite3 does it itself)."""
    global _original
    if sys.version_info >= (3, 13) or _original is not None:
        return
    _original = sqlite3.dbapi2.connect
    # SQLAlchemy's pysqlite dialect calls sqlite3.dbapi2.connect; sqlite3.connect is the same function.
    sqlite3.dbapi2.connect = sqlite3.connect = _connect


def uninstall() -> None:
    """Undo :func:`install`."""
    global _original
    if _original is not None:
        sqlite3.dbapi2.connect = sqlite3.connect = _original
        _original = None
