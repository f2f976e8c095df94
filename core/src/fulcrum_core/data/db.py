"""The host's database: one engine, sessions that commit or roll back, and the packaged migrations.

SQLite (the default) runs in WAL mode with foreign keys on and a busy timeout. SQLAlchemy emits
``BEGIN`` itself, as the SQLite dialect documentation recommends, so reads inside a transaction are
repeatable and savepoints work: :meth:`Database.session` begins ``IMMEDIATE`` (it takes the write
lock up front, so a read-then-write transaction cannot fail half-way on a lock upgrade), and
:meth:`Database.read_session` begins ``DEFERRED`` so readers never queue behind writers.
A lone ``SELECT`` needs no transaction at all: :attr:`Database.single_reads` runs each statement
in autocommit (no ``BEGIN``/``ROLLBACK`` round trips on either backend).
PostgreSQL goes through psycopg 3 without the pool's pre-ping: the request path's reads run once
more when their connection is found dead, every other use pings it first (:mod:`.reconnect`).
Database errors raised inside a session become domain errors (:mod:`fulcrum_core.data.errors`).
"""

from __future__ import annotations

import fcntl
import io
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from fulcrum_core.data.errors import domain_errors
from fulcrum_core.data.reconnect import ping_unless_retried
from fulcrum_core.data.sqlite_deadline import bound_statements

__all__ = [
    "MIGRATION_LOCK_TIMEOUT_MS", "SQLITE_BUSY_TIMEOUT_MS", "Database", "missing_sqlite_file", "normalize_url"
]

SQLITE_BUSY_TIMEOUT_MS = 15_000
"""How long a SQLite writer waits for the lock before giving up (and the caller sees a 503)."""

_BEGIN_OPTION = "fulcrum_sqlite_begin"
_MIGRATION_LOCK = 0x46554C4352554D  # "FULCRUM": the advisory lock key held while migrating

MIGRATION_LOCK_TIMEOUT_MS = 5_000
"""How long a migration on PostgreSQL waits for a lock on a table another session holds (PostgreSQL's
``lock_timeout``) before it gives up, changing nothing. Without a bound an ``ALTER TABLE`` queued behind
a long transaction or a backup's ``pg_dump``, and every worker's query on that table queued behind it."""

_LOCK_NOT_AVAILABLE = "55P03"


def normalize_url(url: str | URL) -> URL:
    """The SQLAlchemy URL to use: a bare ``postgresql://`` URL is routed to psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or "mode=memory" in str(url)


def missing_sqlite_file(url: str | URL) -> Path | None:
    """The file a SQLite ``url`` names when it does not exist yet; None when it exists or is no file.

    Opening such a URL creates the file (and its directory): commands that only read check first.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite" or _is_memory_sqlite(parsed) or not parsed.database:
        return None
    path = Path(parsed.database).expanduser()
    return None if path.exists() else path.resolve()


def empty_sqlite_file(url: str | URL) -> bool:
    """Whether a SQLite ``url`` names a file that exists and holds nothing (created, never written)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite" or _is_memory_sqlite(parsed) or not parsed.database:
        return False
    path = Path(parsed.database).expanduser()
    return path.is_file() and path.stat().st_size == 0


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Stop the sqlite3 module from emitting its own BEGIN; the "begin" listener does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
    if mode == "NONE":  # single_reads: each statement is its own implicit read transaction
        return
    conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


class Database:
    """The platform database at ``url``: engine, sessions, migrations. One per process."""

    def __init__(self, url: str | URL, *, echo: bool = False, statement_timeout_ms: int = 0) -> None:
        """``statement_timeout_ms`` (0: none): a statement that runs longer is cancelled (by the server
        on PostgreSQL, by a progress handler on SQLite: ``sqlite_deadline``), so a runaway query or one
        stuck behind a lock frees its connection and thread instead of holding them. The serving host
        sets it; migrations and other CLI work run without one."""
        self.url = normalize_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(
                f"database URL {self.url.render_as_string(hide_password=True)!r}: "
                "the host runs on SQLite or PostgreSQL (FULCRUM_DATABASE_URL)"
            )
        kwargs: dict[str, Any] = {"echo": echo}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
            if _is_memory_sqlite(self.url):
                # One shared connection, or every checkout would see a different empty database.
                kwargs["poolclass"] = StaticPool
            elif self.url.database:
                Path(self.url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_timeout=10)
            if self.dialect == "postgresql":
                kwargs["connect_args"] = {"connect_timeout": 5}
                if statement_timeout_ms > 0:  # after any options the URL already gives
                    given = self.url.query.get("options")
                    options = [
                        *([given] if isinstance(given, str) else given or ()),
                        f"-c statement_timeout={int(statement_timeout_ms)}",
                    ]
                    kwargs["connect_args"]["options"] = " ".join(options)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.dialect == "sqlite":
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
            if statement_timeout_ms > 0:
                bound_statements(self.engine, statement_timeout_ms)
        else:
            ping_unless_retried(self.engine)
        # The same pool; on SQLite its transactions begin DEFERRED (readers do not queue).
        self.reader: Engine = self.engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"})
        # Still the same pool, for one-statement reads only: no BEGIN, each statement sees the latest
        # committed state. SQLite's connections are already in autocommit (the "begin" listener is
        # what emits BEGIN, and it is told not to); psycopg needs the AUTOCOMMIT isolation level
        # (a client-side flag, reset when the connection returns to the pool).
        self.single_reads: Engine = (
            self.engine.execution_options(**{_BEGIN_OPTION: "NONE"})
            if self.dialect == "sqlite"
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(bind=self.reader, expire_on_commit=False)

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    # --- units of work ---------------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back if it raises."""
        with domain_errors(), self._sessions.begin() as session:
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """Like :meth:`session`, for reads: on SQLite it does not take the write lock up front."""
        with domain_errors(), self._read_sessions.begin() as session:
            yield session

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A Core connection in one write transaction (committed on success, rolled back on error)."""
        with domain_errors(), self.engine.begin() as conn:
            yield conn

    def dispose(self) -> None:
        """Close every pooled connection (at shutdown, or after forking)."""
        self.engine.dispose()

    # --- migrations ------------------------------------------------------------------------------

    def alembic_config(self) -> Config:
        """An alembic ``Config`` for the packaged migrations and this database's URL."""
        cfg = Config()
        cfg.set_main_option("script_location", str(files("fulcrum_core") / "migrations"))
        cfg.set_main_option("path_separator", "os")
        cfg.set_main_option("file_template", "%%(rev)s")
        cfg.set_main_option(
            "sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        return cfg

    def heads(self) -> tuple[str, ...]:
        """The head revision(s) of the packaged migrations (one: the history is linear)."""
        return tuple(ScriptDirectory.from_config(self.alembic_config()).get_heads())

    def current(self) -> str | None:
        """The revision the database is at, or ``None`` for an empty database."""
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """On a SQLite file, one migrating process at a time (a lock file beside the database).

        SQLite can answer "database is locked" at once, without waiting, when connections open and
        upgrade their locks together; workers starting at the same moment queue here instead.
        """
        path = self.engine.url.database
        if self.dialect != "sqlite" or _is_memory_sqlite(self.engine.url) or not path:
            yield
            return
        with open(f"{path}.migrate-lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def upgrade(self, revision: str = "head") -> None:
        """Apply the packaged migrations up to ``revision``, in one transaction per run."""
        with self._migration_lock():
            self._migrate(revision, up=True)

    def downgrade(self, revision: str) -> None:
        """Undo the migrations after ``revision`` (``base``: all), in one transaction: a migration that
        refuses leaves the database as it was."""
        with self._migration_lock():
            self._migrate(revision, up=False)

    def _migrate(self, revision: str, *, up: bool) -> None:
        cfg = self.alembic_config()
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                # Batch migrations copy tables; foreign keys must be off (it is a no-op inside a
                # transaction, hence before the first BEGIN) and are checked again afterwards.
                conn.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
            try:
                with conn.begin():
                    if self.dialect == "postgresql":
                        # Workers starting together migrate one at a time; the later ones find
                        # the database already at head. (SQLite's BEGIN IMMEDIATE does the same.)
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                        # After the advisory lock, which is meant to wait for the other migrating process.
                        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {int(MIGRATION_LOCK_TIMEOUT_MS)}")
                    cfg.attributes["connection"] = conn
                    try:
                        (command.upgrade if up else command.downgrade)(cfg, revision)
                    except OperationalError as exc:
                        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                            raise
                        raise RuntimeError(
                            f"the migration waited {MIGRATION_LOCK_TIMEOUT_MS / 1000:g} s for a lock on a "
                            "table another session holds (a long transaction, a backup); nothing changed: "
                            "run it again once that session ends (pg_stat_activity names it)"
                        ) from None
                if self.dialect == "sqlite":
                    problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    conn.commit()
                    if problems:
                        raise RuntimeError(f"migration left rows breaking foreign keys: {problems[:5]}")
            finally:
                if self.dialect == "sqlite":
                    conn.rollback()
                    conn.connection.driver_connection.execute("PRAGMA foreign_keys = ON")  # type: ignore[union-attr]

    def check(self) -> None:
        """Raise ``alembic.util.exc.AutogenerateDiffsDetected`` when models and migrations disagree.

        The database must be at head first (``upgrade()``); alembic compares it with the models.
        """
        cfg = self.alembic_config()
        cfg.stdout = io.StringIO()  # alembic prints "No new upgrade operations detected." on success
        with self.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.check(cfg)
