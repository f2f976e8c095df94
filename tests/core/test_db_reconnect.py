"""Without the pool's pre-ping, a read that finds its pooled PostgreSQL connection dead runs once more on a
new one; a write is pinged first and never run twice; other failures are not retried; SQLite is as it was."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fulcrum_core.data.consents import ConsentStore
from fulcrum_core.data.db import Database
from fulcrum_core.data.errors import DatabaseUnavailable, domain_errors
from fulcrum_core.data.impressions import ImpressionStore
from fulcrum_core.data.models.consent import ConsentRow
from fulcrum_core.data.reconnect import idempotent_read
from fulcrum_core.data.storage import SqlPluginStorage
from sqlalchemy import create_engine, exc, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RETRIED = "met a dead pooled connection"
_TERMINATE = text(
    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
    " WHERE application_name = :name AND pid <> pg_backend_pid()"
)


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    """A migrated PostgreSQL database whose connections carry a name of their own, so a test can end
    them (and only them) from another connection."""
    name = f"fulcrum-reconnect-{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_url).update_query_dict({"application_name": name})
    db = Database(url)
    db.upgrade()
    try:
        yield db
    finally:
        db.dispose()


def _terminate(db: Database) -> int:
    """End every server backend of ``db``'s pool, as an administrator or a restart would; how many."""
    name = db.url.query["application_name"]
    admin = create_engine(db.url.set(query={}), poolclass=NullPool)
    try:
        with admin.connect() as conn:
            # The timeout makes each call wait until its backend has exited.
            ended = conn.execute(_TERMINATE, {"name": name}).scalar_one()
            return int(ended)
    finally:
        admin.dispose()


def _pings(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The connections pinged from now on (the dialect's ``do_ping``, which the pre-ping also used)."""
    pinged: list[object] = []
    ping = db.engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pinged.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(db.engine.dialect, "do_ping", counted)
    return pinged


def _retries(caplog: pytest.LogCaptureFixture) -> int:
    return sum(RETRIED in r.getMessage() for r in caplog.records)


@pytest.mark.postgres
def test_each_read_of_the_request_path_survives_its_connection_ended(
    pg: Database, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Live consents, a plugin document, counters, impressions and a consent read in a session each
    answer with the right rows after their pooled connection was ended, each run once more."""
    caplog.set_level(logging.INFO, logger="fulcrum.data")
    consents, storage, impressions = ConsentStore(pg), SqlPluginStorage(pg, "p"), ImpressionStore(pg)
    consent_id = consents.grant("c-1", "p", {"location:city"}, "x", NOW + timedelta(days=1), now=NOW)
    storage.put("doc", {"v": 1})
    storage.add("n", 3)
    impressions.record("c-1", "home", "p", "offer", NOW)
    reads: list[tuple[Callable[[], object], object]] = [
        (lambda: consents.live_scopes("c-1", NOW), {"p": frozenset({"location:city"})}),
        (lambda: storage.get("doc"), {"v": 1}),
        (lambda: storage.counters(["n", "m"]), {"n": 3, "m": 0}),
        (lambda: impressions.count_since("c-1", "home", NOW), 1),
        (lambda: consents.get(consent_id, "c-1").plugin_id, "p"),
    ]
    pinged = _pings(pg, monkeypatch)
    for number, (read, expected) in enumerate(reads, start=1):
        assert read() == expected  # the pool holds a connection that has served
        assert _terminate(pg) >= 1
        assert read() == expected
        assert _retries(caplog) == number
    assert pinged == []  # never the first attempts; the second ones each take a new connection


@pytest.mark.postgres
def test_one_read_finds_a_restart_and_the_pool_replaces_every_older_connection(
    pg: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """After every backend ended (a restart), one read is retried; the connections the pool still held are
    replaced at their next checkout rather than each failing a read of its own."""
    caplog.set_level(logging.INFO, logger="fulcrum.data")
    held = [pg.single_reads.connect() for _ in range(3)]
    for conn in held:
        conn.execute(text("SELECT 1"))
    for conn in held:
        conn.close()  # three connections in the pool, handed out oldest first
    assert _terminate(pg) == 3
    consents = ConsentStore(pg)
    for _ in range(4):
        assert consents.live_scopes("c-1", NOW) == {}
    assert _retries(caplog) == 1


@pytest.mark.postgres
def test_a_write_on_an_ended_connection_is_pinged_first_and_done_once(
    pg: Database, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write checks its connection before it sends anything: the dead one is replaced, the write is
    done once, and nothing was retried."""
    caplog.set_level(logging.INFO, logger="fulcrum.data")
    consents = ConsentStore(pg)
    consents.live_scopes("c-1", NOW)
    assert _terminate(pg) >= 1
    pinged = _pings(pg, monkeypatch)
    consents.grant("c-1", "p", {"location:city"}, "x", NOW + timedelta(days=1), now=NOW)
    with pg.read_session() as session:
        assert session.scalar(select(func.count()).select_from(ConsentRow)) == 1
    assert len(pinged) == 2  # the write's (dead), then the read session's
    assert _retries(caplog) == 0


@pytest.mark.postgres
def test_a_write_whose_connection_dies_half_way_fails_and_writes_nothing(
    pg: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection ended in the middle of a write transaction fails it as unavailable (the request may be
    retried by its client); it is not run again, and nothing of it is committed."""
    caplog.set_level(logging.INFO, logger="fulcrum.data")
    impressions = ImpressionStore(pg)
    row = {"customer_ref": "c-1", "slot": "home", "plugin_id": "p", "offer_key": "o", "at": NOW}
    insert = text(
        "INSERT INTO impressions (customer_ref, slot, plugin_id, offer_key, at) "
        "VALUES (:customer_ref, :slot, :plugin_id, :offer_key, :at)"
    )

    def write_twice() -> None:
        with pg.begin() as conn:
            conn.execute(insert, row)
            _terminate(pg)
            conn.execute(insert, row)

    with pytest.raises(DatabaseUnavailable):
        write_twice()
    assert impressions.count_since("c-1", "home", NOW) == 0
    assert _retries(caplog) == 0
    impressions.record("c-1", "home", "p", "o", NOW)  # the next write takes a new connection
    assert impressions.count_since("c-1", "home", NOW) == 1


@pytest.mark.postgres
def test_a_read_that_fails_otherwise_is_not_retried(postgres_url: str) -> None:
    """A statement cancelled by the statement timeout, and a programming error, each raise at once: the
    read ran once."""
    db = Database(postgres_url, statement_timeout_ms=50)
    calls: list[str] = []

    @idempotent_read
    def read(sql: str) -> object:
        calls.append(sql)
        with domain_errors(), db.single_reads.connect() as conn:
            return conn.execute(text(sql)).scalar_one()

    try:
        with pytest.raises(DatabaseUnavailable):
            read("SELECT pg_sleep(2)")
        with pytest.raises(exc.ProgrammingError):
            read("SELECT * FROM no_such_table")
        assert calls == ["SELECT pg_sleep(2)", "SELECT * FROM no_such_table"]
        assert read("SELECT 1") == 1
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_read_outside_the_request_path_is_pinged_as_before(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read not marked idempotent still has its connection checked before use, so it survives a
    dead connection without being retried."""
    pg.single_reads.connect().close()
    assert _terminate(pg) >= 1
    pinged = _pings(pg, monkeypatch)
    with pg.read_session() as session:
        assert session.scalar(select(func.count()).select_from(ConsentRow)) == 0
    assert len(pinged) == 1


@pytest.mark.postgres
def test_a_one_statement_read_on_a_replaced_connection_is_still_in_autocommit(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection that replaces a dead one found by the ping is given the engine's options too: a
    ``single_reads`` statement on it runs in autocommit, not inside a transaction of its own."""
    pg.single_reads.connect().close()
    assert _terminate(pg) >= 1
    pinged = _pings(pg, monkeypatch)
    with pg.single_reads.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
        assert conn.connection.dbapi_connection.autocommit is True  # type: ignore[union-attr]
    assert len(pinged) == 1  # the dead one; its replacement is new


@pytest.mark.postgres
def test_a_new_connection_is_not_pinged(pg: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection the pool has just made answers its first checkout unpinged, as the pre-ping left it;
    once it has gone back to the pool, its next checkout outside a retried read is pinged."""
    pg.dispose()
    pinged = _pings(pg, monkeypatch)
    with pg.read_session() as session:
        assert session.scalar(select(func.count()).select_from(ConsentRow)) == 0
    assert pinged == []
    with pg.read_session() as session:
        assert session.scalar(select(func.count()).select_from(ConsentRow)) == 0
    assert len(pinged) == 1


def test_sqlite_reads_are_not_pinged_or_retried(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite nothing changes: no ping, and a failing read raises after one attempt."""
    pinged = _pings(sqlite_db, monkeypatch)
    consents = ConsentStore(sqlite_db)
    consents.grant("c-1", "p", {"location:city"}, "x", NOW + timedelta(days=1), now=NOW)
    assert consents.live_scopes("c-1", NOW) == {"p": frozenset({"location:city"})}
    calls: list[int] = []

    @idempotent_read
    def read() -> object:
        calls.append(1)
        with sqlite_db.single_reads.connect() as conn:
            return conn.execute(text("SELECT * FROM no_such_table")).all()

    with pytest.raises(exc.OperationalError):
        read()
    assert calls == [1]
    assert pinged == []


def test_a_read_that_returns_before_it_reads_is_refused() -> None:
    """A coroutine or generator function cannot be an idempotent read: its statements would run after
    the first attempt ended, never read again; the error names it."""

    async def coroutine() -> int:
        return 1

    def generator() -> Iterator[int]:
        yield 1

    for read in (coroutine, generator):
        with pytest.raises(TypeError, match=f"{read.__name__}.*decorate the blocking read"):
            idempotent_read(read)


def test_the_ping_takes_a_disconnect_for_a_dead_connection_and_raises_any_other_error() -> None:
    """The checkout's ping, through the dialect's public ``do_ping`` and ``is_disconnect``: a connection
    the driver says is closed is dead (False, replaced by the pool); another driver error raises."""
    import sqlite3

    from fulcrum_core.data.reconnect import _alive

    dialect = create_engine("sqlite://").dialect
    live = sqlite3.connect(":memory:")
    assert _alive(dialect, live) is True
    live.close()
    assert _alive(dialect, live) is False

    class Locked:
        def cursor(self) -> Any:
            raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _alive(dialect, Locked())  # type: ignore[arg-type]
