"""``PreparedRead``: the request path's reads on the cursor answer as ``Connection.execute`` would, with
the same guarantees: types converted, driver errors as SQLAlchemy's, statements bounded, no transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.errors import DatabaseUnavailable, domain_errors
from fulcrum_core.data.models.consent import ConsentRow
from fulcrum_core.data.prepared import PreparedRead
from sqlalchemy import bindparam, column, exc, func, literal, select, table

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SCOPES = {"location:city"}

_LIVE = select(ConsentRow.plugin_id, ConsentRow.expires_at, ConsentRow.status).where(
    ConsentRow.customer_ref == bindparam("customer"),
    ConsentRow.status == "authorised",
    ConsentRow.expires_at > bindparam("at"),
).order_by(ConsentRow.plugin_id)


def _counting(stop: int, *, keep: Any = None) -> Any:
    """``SELECT x`` over 1 … ``stop``, counted by a recursive CTE (values bound), rows where ``keep``."""
    n = select(literal(1).label("x")).cte("n", recursive=True)
    n = n.union_all(select(n.c.x + 1).where(n.c.x < stop))
    return select(n.c.x).where(keep(n.c.x)) if keep is not None else select(n.c.x)


def test_rows_match_what_execute_returns(db: Database) -> None:
    """Same rows as ``Connection.execute`` of the same statement: the statement's own literal bound,
    the instant asked bound as the column's type binds it, timestamps back as aware UTC datetimes."""
    store = ConsentStore(db)
    shanghai = timezone(timedelta(hours=8))
    store.grant("c-1", "a", SCOPES, "x", datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=shanghai), now=NOW)
    store.grant("c-1", "b", SCOPES, "x", NOW + timedelta(hours=1), now=NOW)
    store.request("c-1", "c", SCOPES, "x", NOW + timedelta(days=1), now=NOW)  # awaiting: not selected
    store.grant("c-2", "d", SCOPES, "x", NOW + timedelta(days=1), now=NOW)
    read = PreparedRead(_LIVE)
    params = {"customer": "c-1", "at": NOW}
    with db.single_reads.connect() as conn:
        got = read.rows(conn, params)
        expected = [tuple(row) for row in conn.execute(_LIVE, params)]
    assert [row[0] for row in got] == ["a", "b"]
    assert got == expected
    assert all(row[1].tzinfo is UTC for row in got)
    with db.single_reads.connect() as conn:
        assert read.rows(conn, {"customer": "c-1", "at": NOW + timedelta(hours=2)}) == [expected[0]]


def test_a_read_leaves_no_transaction_open(db: Database) -> None:
    """No BEGIN before the read and nothing open after it: SQLite in autocommit, psycopg idle in
    AUTOCOMMIT, SQLAlchemy's connection not in a transaction."""
    with db.single_reads.connect() as conn:
        assert PreparedRead(_counting(3)).rows(conn, {}) == [(1,), (2,), (3,)]
        assert not conn.in_transaction()
        driver = conn.connection.driver_connection
        if db.dialect == "sqlite":
            assert driver.in_transaction is False  # type: ignore[union-attr]
        else:
            assert driver.info.transaction_status.name == "IDLE"  # type: ignore[union-attr]


def test_a_driver_error_raises_as_sqlalchemys_and_the_connection_serves_on(db: Database) -> None:
    """A failed read raises SQLAlchemy's error (which ``domain_errors`` and ``storage_errors``
    translate), not the driver's own, and leaves its pooled connection usable."""
    missing = PreparedRead(select(column("x")).select_from(table("no_such_table")))
    with db.single_reads.connect() as conn, pytest.raises(exc.DBAPIError) as raised:
        missing.rows(conn, {})
    assert not isinstance(raised.value.orig, exc.SQLAlchemyError)
    with db.single_reads.connect() as conn:
        assert PreparedRead(_counting(2)).rows(conn, {}) == [(1,), (2,)]


def test_a_runaway_read_is_cut_by_the_statement_timeout(database_url: str) -> None:
    """The statement timeout bounds a prepared read as any other: SQLite's deadline starts in the
    ``before_cursor_execute`` event the read fires, PostgreSQL's ``statement_timeout`` is the server's;
    both become ``DatabaseUnavailable``, and the pooled connection serves the next read."""
    db = Database(database_url, statement_timeout_ms=100)
    counted = _counting(10_000_000).subquery()  # several seconds, standing for a read that never ends
    runaway = PreparedRead(select(func.sum(counted.c.x)))
    try:
        with pytest.raises(DatabaseUnavailable), domain_errors(), db.single_reads.connect() as conn:
            runaway.rows(conn, {})
        with db.single_reads.connect() as conn:
            assert PreparedRead(_counting(2)).rows(conn, {}) == [(1,), (2,)]
    finally:
        db.dispose()


def test_sqlite_a_read_stopped_while_its_rows_are_fetched_raises_as_sqlalchemys(sqlite_url: str) -> None:
    """The deadline also covers the fetching of the rows: a statement whose first row comes at once and
    whose next takes long is interrupted in ``fetchall`` and raises SQLAlchemy's ``OperationalError``."""
    db = Database(sqlite_url, statement_timeout_ms=100)
    try:
        late = PreparedRead(_counting(50_000_000, keep=lambda x: (x == 1) | (x % 40_000_000 == 0)))
        with pytest.raises(exc.OperationalError), db.single_reads.connect() as conn:
            late.rows(conn, {})
    finally:
        db.dispose()


def test_a_statement_with_an_expanding_parameter_is_refused(sqlite_db: Database) -> None:
    """An expanding ``IN`` is rendered per call by ``Connection.execute``; a prepared read takes one
    bound parameter per value instead, and says so."""
    keys = PreparedRead(select(column("x")).where(column("x").in_(bindparam("keys", expanding=True))))
    with sqlite_db.single_reads.connect() as conn, pytest.raises(ValueError, match="expanding"):
        keys.rows(conn, {"keys": [1]})
