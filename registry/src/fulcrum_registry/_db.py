"""Units of work, and the one place where database errors become registry errors.

Registry writes are few (people submitting and reviewing) and each appends to the audit chain, so
they are simply serialised: on PostgreSQL every write transaction first takes one transaction-scoped
advisory lock; SQLite allows one writer at a time anyway. Serial writers read each other's committed
work, which keeps every read-then-write rule (version newer, four eyes, next audit ``seq``) honest.

Should two writers still collide (a unique key, or SQLite refusing a lock upgrade), the loser sees an
``IntegrityError`` or ``OperationalError``: the whole unit of work is run again from fresh reads, a
few times, before the caller is told to retry. Domain errors raised by the work itself pass through
unchanged and roll the transaction back, so no half-written rows are left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from fulcrum_registry.errors import Conflict, RegistryUnavailable

__all__ = ["UnitOfWork"]

T = TypeVar("T")

WRITE_LOCK_KEY = 0x46554C4352554D  # "FULCRUM": the advisory lock every registry writer takes on PostgreSQL


def _unavailable(exc: SQLAlchemyError) -> RegistryUnavailable:
    """What the database said, without SQLAlchemy's statement and link (API answers show it), and
    without the lines PostgreSQL adds pointing into the statement (``LINE 2: ...`` and a caret)."""
    reason = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    said = str(reason).strip()
    return RegistryUnavailable(f"database error: {said.splitlines()[0] if said else said}")


class UnitOfWork:
    """Runs a function in one transaction, retrying on write contention, translating DB errors."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        *,
        read_session_factory: Callable[[], Session] | None = None,
        attempts: int = 5,
    ) -> None:
        self._session_factory = session_factory
        self._read_session_factory = read_session_factory or session_factory
        self._attempts = attempts

    def run(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` inside a transaction that commits when it returns."""
        for attempt in range(1, self._attempts + 1):
            try:
                with self._session_factory() as session, session.begin():
                    if session.get_bind().dialect.name == "postgresql":
                        session.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))
                    return work(session)
            except IntegrityError as exc:
                if attempt == self._attempts:
                    raise Conflict("the registry changed concurrently; retry the request") from exc
            except OperationalError as exc:
                if attempt == self._attempts:
                    raise _unavailable(exc) from exc
            except SQLAlchemyError as exc:
                raise _unavailable(exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def read(self, work: Callable[[Session], T]) -> T:
        """``work(session)`` in a read-only use of a session; errors are translated, never retried."""
        try:
            with self._read_session_factory() as session:
                return work(session)
        except SQLAlchemyError as exc:
            raise _unavailable(exc) from exc
