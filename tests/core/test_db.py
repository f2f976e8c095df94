"""The database wrapper: engine settings, units of work, and the one translation of DB errors."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fulcrum_core.data.db import Database, normalize_url
from fulcrum_core.data.errors import DatabaseUnavailable, DuplicateRow, InvalidValue, to_domain_error
from fulcrum_core.data.models import ConsentRow, ImpressionRow
from fulcrum_core.data.types import UTCDateTime
from fulcrum_core.errors import Conflict, ServiceUnavailable
from sqlalchemy import select, text
from sqlalchemy.exc import DataError, ProgrammingError

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def _consent(consent_id: str, *, at: datetime = NOW) -> ConsentRow:
    return ConsentRow(
        id=consent_id, customer_ref="c-1", plugin_id="p", scopes="location:city", purpose="test",
        status="authorised", created_at=at, expires_at=at + timedelta(days=1),
    )


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(sqlite_url: str) -> None:
    """Every SQLite connection gets WAL, enforced foreign keys and a busy timeout."""
    db = Database(sqlite_url)
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        db.dispose()


def test_sqlite_database_directory_is_created(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A SQLite URL under a missing directory still works: the directory is made."""
    db = Database(f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}")
    try:
        db.upgrade()
        assert (tmp_path / "a" / "b" / "x.db").exists()
    finally:
        db.dispose()


def test_bare_postgresql_url_uses_psycopg3() -> None:
    """``postgresql://`` is routed to psycopg 3, the driver the host ships with."""
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_repr_hides_the_password() -> None:
    """The database's repr never shows a password."""
    db = Database("postgresql://user:s3cret@127.0.0.1:1/x")
    try:
        assert "s3cret" not in repr(db)
    finally:
        db.dispose()


def test_session_commits_on_success(db: Database) -> None:
    """Rows written in a session are there after the block ends."""
    with db.session() as session:
        session.add(_consent("a"))
    with db.read_session() as session:
        assert session.get(ConsentRow, "a") is not None


def test_session_rolls_back_on_error(db: Database) -> None:
    """An exception inside the block leaves no half-written rows."""
    def write_then_fail() -> None:
        with db.session() as session:
            session.add(_consent("a"))
            session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_fail()
    with db.read_session() as session:
        assert session.get(ConsentRow, "a") is None


def test_duplicate_key_becomes_a_conflict(db: Database) -> None:
    """A unique violation surfaces as the domain's 409 ``DuplicateRow``, not a driver error."""
    with db.session() as session:
        session.add(_consent("a"))
    with pytest.raises(DuplicateRow) as info, db.session() as session:
        session.add(_consent("a"))
    assert isinstance(info.value, Conflict)
    assert info.value.status == 409


def test_check_constraint_becomes_a_conflict(db: Database) -> None:
    """A status outside the allowed set is refused by the database and translated."""
    row = _consent("a")
    row.status = "bogus"
    with pytest.raises(DuplicateRow), db.session() as session:
        session.add(row)


def test_unreachable_database_becomes_503() -> None:
    """A database that cannot be reached is a 503 ``DatabaseUnavailable``."""
    db = Database("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    try:
        with pytest.raises(DatabaseUnavailable) as info, db.session() as session:
            session.execute(text("SELECT 1"))
        assert isinstance(info.value, ServiceUnavailable)
        assert info.value.status == 503
        assert "127.0.0.1" not in info.value.detail
    finally:
        db.dispose()


@pytest.mark.postgres
def test_programming_errors_are_not_disguised(postgres_url: str) -> None:
    """SQL that is simply wrong is a bug: it is re-raised as it is, not turned into a 4xx/503."""
    db = Database(postgres_url)
    try:
        with pytest.raises(ProgrammingError), db.session() as session:
            session.execute(text("SELECT * FROM no_such_table_anywhere"))
    finally:
        db.dispose()


def test_unmapped_errors_are_left_alone() -> None:
    """Only conditions (conflict, bad value, unavailable) are translated; bugs map to nothing."""
    assert to_domain_error(ProgrammingError("SELECT", {}, Exception("syntax"))) is None
    assert isinstance(to_domain_error(DataError("INSERT", {}, Exception("too long"))), InvalidValue)


def test_timestamps_come_back_aware_in_utc(db: Database) -> None:
    """A timestamp written in another zone is read back as the same instant, in UTC."""
    shanghai = timezone(timedelta(hours=8))
    at = datetime(2026, 11, 28, 20, 0, tzinfo=shanghai)
    with db.session() as session:
        session.add(ImpressionRow(customer_ref="c", slot="s", plugin_id="p", offer_key="k", at=at))
    with db.read_session() as session:
        stored = session.scalars(select(ImpressionRow.at)).one()
    assert stored == at
    assert stored.tzinfo is not None
    assert stored.utcoffset() == timedelta(0)


def test_naive_timestamps_are_refused(db: Database) -> None:
    """A naive datetime cannot be written: its zone would be a guess."""
    naive = ImpressionRow(customer_ref="c", slot="s", plugin_id="p", offer_key="k",
                          at=datetime(2026, 1, 1))  # noqa: DTZ001

    def write() -> None:
        with db.session() as session:
            session.add(naive)

    with pytest.raises(Exception, match="naive datetime"):
        write()


def test_utc_type_rejects_non_datetimes_from_the_database() -> None:
    """A column holding something that is not a timestamp is reported, not passed on."""
    with pytest.raises(TypeError):
        UTCDateTime().process_result_value("2026-01-01", Database("sqlite://").engine.dialect)


def test_sqlite_writers_wait_for_each_other_instead_of_failing(sqlite_url: str) -> None:
    """Concurrent read-then-write sessions on SQLite serialize on the lock; none fails as 'locked'."""
    db = Database(sqlite_url)
    db.upgrade()
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        try:
            barrier.wait()
            with db.session() as session:
                session.scalars(select(ConsentRow)).all()
                session.add(_consent(f"c{i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        with db.read_session() as session:
            assert len(session.scalars(select(ConsentRow)).all()) == 8
    finally:
        db.dispose()


def test_an_unsupported_database_is_refused_with_the_setting_named() -> None:
    """A MySQL URL is refused at construction, naming the setting, with the password hidden."""
    with pytest.raises(ValueError, match="FULCRUM_DATABASE_URL") as refused:
        Database("mysql://user:secret@127.0.0.1/app")
    assert "secret" not in str(refused.value)


@pytest.mark.postgres
def test_a_statement_past_the_timeout_is_cancelled(postgres_url: str) -> None:
    """statement_timeout_ms: the server cancels a statement that runs longer, so it cannot hold its
    connection and thread; options the URL already gives (here the test's search_path) are kept.
    Without it (migrations, the CLI) there is no limit."""
    from sqlalchemy.exc import OperationalError

    db = Database(postgres_url, statement_timeout_ms=200)
    plain = Database(postgres_url)
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "200ms"
            assert str(conn.exec_driver_sql("SELECT current_schema()").scalar()).startswith("test_")
            with pytest.raises(OperationalError, match="statement timeout"):
                conn.exec_driver_sql("SELECT pg_sleep(2)")
        with plain.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
    finally:
        db.dispose()
        plain.dispose()


def test_the_serving_host_gets_the_settings_timeout(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """build_runtime hands db_statement_timeout_ms to the host's database."""
    import msgspec
    from fulcrum_core import app as app_module

    seen: dict[str, Any] = {}
    real = app_module.Database

    def recording(url: str, **kwargs: Any) -> Database:
        seen.update(kwargs)
        return real(url, **kwargs)

    monkeypatch.setattr(app_module, "Database", recording)
    runtime = app_module.build_runtime(
        msgspec.structs.replace(settings, db_statement_timeout_ms=1234), load_entry_points=False
    )
    runtime.db.dispose()
    assert seen == {"statement_timeout_ms": 1234}
