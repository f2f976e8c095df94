"""``INSERT … ON CONFLICT`` for the two dialects the host runs on (both spell it the same way)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["insert_for"]


def insert_for(dialect: str, table: Table) -> Any:
    """The dialect's ``insert(table)``, which offers ``on_conflict_do_update/do_nothing``."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    # Database() refuses other URLs up front; reaching this is a programming error.
    raise ValueError(f"the host supports SQLite and PostgreSQL, not {dialect!r}")
