"""SQLite statements of the serving host are bounded by ``statement_timeout_ms`` (a progress handler):
a runaway query is interrupted and frees its connection; nothing else is ever interrupted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fulcrum_core.data.db import Database
from fulcrum_core.data.errors import DatabaseUnavailable
from sqlalchemy import text

FINITE = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n LIMIT {rows}) SELECT sum(x) FROM n"
RUNAWAY = FINITE.format(rows=10_000_000)
"""A query of several seconds, standing for one that never ends (without a timeout the test ends too)."""


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'deadline.db'}"


def test_a_runaway_query_is_interrupted_and_the_connection_serves_on(url: str) -> None:
    """Before, SQLite had no statement timeout and this query held its worker thread forever; now it
    is interrupted after the timeout (a 503 DatabaseUnavailable, as PostgreSQL's cancel), and the same
    pooled connection runs the next statement."""
    db = Database(url, statement_timeout_ms=200)
    try:
        began = time.monotonic()
        with pytest.raises(DatabaseUnavailable), db.read_session() as session:
            session.execute(text(RUNAWAY)).scalar()
        assert 0.2 <= time.monotonic() - began < 1.5
        with db.read_session() as session:
            assert session.execute(text(FINITE.format(rows=1000))).scalar() == 500500
    finally:
        db.dispose()


def test_only_the_running_statement_is_timed(url: str) -> None:
    """A transaction may last longer than the timeout: each statement gets its own, and the COMMIT after
    a slow caller (or a connection idle in the pool) is never interrupted."""
    db = Database(url, statement_timeout_ms=100)
    try:
        with db.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        with db.session() as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
            time.sleep(0.25)  # the caller is slow; no statement is running
            session.execute(text("INSERT INTO t VALUES (2)"))
            time.sleep(0.25)
        time.sleep(0.15)
        with db.read_session() as session:
            assert session.execute(text("SELECT count(*) FROM t")).scalar() == 2
    finally:
        db.dispose()


def test_without_a_timeout_a_long_statement_runs_to_its_end(url: str) -> None:
    """Migrations and the CLI build the database without a timeout: a long statement is not cut."""
    bounded = Database(url, statement_timeout_ms=1)
    plain = Database(url)
    try:
        query = text(FINITE.format(rows=300_000))
        with pytest.raises(DatabaseUnavailable), bounded.read_session() as session:
            session.execute(query).scalar()
        with plain.read_session() as session:
            assert session.execute(query).scalar() == 300_000 * 300_001 // 2
    finally:
        bounded.dispose()
        plain.dispose()
