"""What replaces the pool's pre-ping on PostgreSQL: the request path's reads retried once instead.

A pooled connection can be dead when it is checked out: the server restarted, an administrator ended
the backend (``pg_terminate_backend``), an idle timeout closed it. ``pool_pre_ping`` found out with a
round trip before every checkout, as long as an indexed read takes. Now a connection is pinged
(:func:`ping_unless_retried`, the pre-ping's own ping) unless it serves an :func:`idempotent_read`.
There the statement finds out: SQLAlchemy sees the disconnect, invalidates that connection and marks
every connection the pool made before it for replacement (``DBAPIError.connection_invalidated``, the
documentation's "Disconnect Handling - Optimistic"), and the read runs once more, on a new connection
(or, pinged, on one the pool made since).

A write is never run twice: it may have committed before its connection died. Its connection is still
pinged before the first statement, and a connection that dies during the write fails it, as before.

The ping is the pre-ping's, through the dialect's public interface (``do_ping``, ``is_disconnect``):
a driver error the dialect takes for a disconnect means a dead connection, any other raises. Unlike the
pre-ping it does not run ``handle_error`` listeners (the host installs none).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from contextvars import ContextVar
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

__all__ = ["idempotent_read", "ping_unless_retried"]

log = logging.getLogger("fulcrum.data")

P = ParamSpec("P")
T = TypeVar("T")

_RETRIED: ContextVar[bool] = ContextVar("fulcrum_read_retried", default=False)
"""True while an :func:`idempotent_read` runs its first attempt (per thread, per task)."""

_FRESH = "fulcrum_fresh"
"""The key of a pool entry's ``info`` while its connection, just made, has not been handed out."""


def _found_dead(error: BaseException) -> bool:
    """Whether ``error``, or the database error it was translated from, found its connection dead."""
    seen: BaseException | None = error
    for _ in range(4):  # a domain error wraps the database error: look a few causes down
        if seen is None:
            return False
        if isinstance(seen, sa_exc.DBAPIError):
            return seen.connection_invalidated
        seen = seen.__cause__
    return False


def idempotent_read(read: Callable[P, T]) -> Callable[P, T]:
    """``read`` on unpinged connections, run once more when one was found dead.

    For reads only: running ``read`` twice must change nothing, and it must write nothing, since a
    write would go unpinged and run again. Any other failure (a statement timeout, a programming
    error, a database that is down) raises at once, as does a second failure. ``read`` returns its
    answer: a coroutine or generator function would read after the first attempt ended, and is refused.
    """
    deferred = (inspect.iscoroutinefunction, inspect.isgeneratorfunction, inspect.isasyncgenfunction)
    if any(returns_first(read) for returns_first in deferred):
        raise TypeError(
            f"idempotent_read: {read.__qualname__} reads after it returns (a coroutine or generator "
            "function), where a dead connection would not be read again; decorate the blocking read it runs"
        )

    @functools.wraps(read)
    def reading(*args: P.args, **kwargs: P.kwargs) -> T:
        first = _RETRIED.set(True)
        try:
            return read(*args, **kwargs)
        except Exception as error:
            if not _found_dead(error):
                raise
            log.info("%s met a dead pooled connection; reading again on a new one", read.__qualname__)
        finally:
            _RETRIED.reset(first)
        return read(*args, **kwargs)

    return reading


def _alive(dialect: Dialect, dbapi_connection: DBAPIConnection) -> bool:
    """Whether ``dbapi_connection`` answers the dialect's ping: False when the driver's error is a
    disconnect in the dialect's judgement; any other error raises."""
    try:
        return dialect.do_ping(dbapi_connection)
    except dialect.loaded_dbapi.Error as error:
        if dialect.is_disconnect(error, dbapi_connection, None):
            return False
        raise


def ping_unless_retried(engine: Engine) -> None:
    """Ping each connection ``engine``'s pool hands out, unless an :func:`idempotent_read` is on it or the
    pool has just made it (as the pre-ping did).

    The ping runs at the pool's checkout, before the engine's options (``single_reads``' autocommit) are
    applied to the connection: a dead one is replaced there by a new one, and the pool replaces every
    connection made before it at their next checkout (after a restart they are all dead), as the
    pre-ping did. A ping that fails otherwise raises as the pre-ping's did.
    """
    dialect = engine.dialect

    def made(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[_FRESH] = True

    def checkout(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
    ) -> None:
        if record.info.pop(_FRESH, False) or _RETRIED.get():
            return
        if not _alive(dialect, dbapi_connection):
            raise sa_exc.InvalidatePoolError("the pooled connection was found dead before use")

    event.listen(engine, "connect", made)
    event.listen(engine, "checkout", checkout)
