"""The one place where database errors become domain errors.

    sqlalchemy.exc.SQLAlchemyError           becomes
    ├── IntegrityError                       DuplicateRow        (Conflict, 409)
    ├── DataError                            InvalidValue        (Unprocessable, 422)
    ├── OperationalError, InterfaceError,
    │   DisconnectionError, TimeoutError     DatabaseUnavailable (ServiceUnavailable, 503)
    └── anything else (ProgrammingError …)   re-raised unchanged: it is a bug, not a condition

Plugin storage has its own contract (``fulcrum_sdk.errors``): there every database error becomes
``StorageUnavailable``, which a plugin may retry. Both translations live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fulcrum_sdk.errors import StorageUnavailable
from sqlalchemy import exc as sa_exc

from fulcrum_core.errors import Conflict, CoreError, ServiceUnavailable, Unprocessable

__all__ = [
    "DatabaseUnavailable",
    "DuplicateRow",
    "InvalidValue",
    "domain_errors",
    "storage_errors",
    "to_domain_error",
]


class DatabaseUnavailable(ServiceUnavailable):
    """The database could not be reached or timed out; the request may be retried."""

    default_code = "db.unavailable"


class DuplicateRow(Conflict):
    """A write broke a uniqueness or foreign-key rule."""

    default_code = "db.duplicate"


class InvalidValue(Unprocessable):
    """The database refused a value (too long, out of range)."""

    default_code = "db.invalid-value"


_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)


def to_domain_error(exc: sa_exc.SQLAlchemyError) -> CoreError | None:
    """The domain error for ``exc``, or ``None`` when it is a programming error to re-raise."""
    # The driver's message may quote row values (customer data): keep it out of the detail.
    if isinstance(exc, sa_exc.IntegrityError):
        return DuplicateRow("the write conflicts with an existing record")
    if isinstance(exc, sa_exc.DataError):
        return InvalidValue("a value was refused by the database (too long or out of range)")
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable("the database is unavailable; retry later")
    return None


@contextmanager
def domain_errors() -> Iterator[None]:
    """Translate SQLAlchemy errors raised inside the block with :func:`to_domain_error`."""
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        mapped = to_domain_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


@contextmanager
def storage_errors(plugin_id: str) -> Iterator[None]:
    """Translate any database error inside the block into the SDK's ``StorageUnavailable``."""
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        raise StorageUnavailable(f"plugin storage for {plugin_id!r} is unavailable; retry later") from exc
