"""A statement timeout for SQLite, which has none of its own (PostgreSQL's is ``statement_timeout``).

sqlite3's progress handler runs every ``PROGRESS_OPS`` virtual-machine instructions of whatever
statement the connection is running; returning non-zero interrupts it (``SQLITE_INTERRUPT``, raised
as ``OperationalError: interrupted``, so the caller sees the same 503 as a PostgreSQL cancel). Each
pooled connection gets its own :class:`_Deadline` on connect; ``before_cursor_execute`` starts it, so
a statement's execution and the fetching of its rows share one budget. Ending a transaction (commit,
rollback, the pool's reset on return) stops it, so neither a ``COMMIT`` after a slow caller nor an
idle connection is ever interrupted.

Limits: the check runs between instructions, so one long instruction (a big sort's merge, a slow
application function) finishes before the statement is stopped; and a wait for the write lock is
bounded by the busy timeout, not by this.
"""

from __future__ import annotations

import math
import time
from typing import Any

from sqlalchemy import Connection, Engine, event

__all__ = ["PROGRESS_OPS", "bound_statements"]

PROGRESS_OPS = 1000
"""Instructions between two looks at the clock: about a millisecond of work at most, and no
measurable cost (a 2 M-row query took the same time with and without the handler)."""

_KEY = "fulcrum_statement_deadline"


class _Deadline:
    """The progress handler of one connection: non-zero (interrupt) once the running statement is
    past its end."""

    __slots__ = ("ends", "limit_s")

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.ends = math.inf

    def start(self) -> None:
        self.ends = time.monotonic() + self.limit_s

    def stop(self) -> None:
        self.ends = math.inf

    def __call__(self) -> int:
        return 1 if time.monotonic() > self.ends else 0


def bound_statements(engine: Engine, timeout_ms: int) -> None:
    """Interrupt any statement on ``engine`` (SQLite) that runs longer than ``timeout_ms``."""
    limit_s = timeout_ms / 1000

    def connect(dbapi_connection: Any, record: Any) -> None:
        deadline = _Deadline(limit_s)
        record.info[_KEY] = deadline
        dbapi_connection.set_progress_handler(deadline, PROGRESS_OPS)

    def start(conn: Connection, *_: Any) -> None:
        deadline = conn.info.get(_KEY)
        if deadline is not None:
            deadline.start()

    def stop(conn: Connection) -> None:
        deadline = conn.info.get(_KEY)
        if deadline is not None:
            deadline.stop()

    def stop_checked_in(_dbapi_connection: Any, record: Any) -> None:
        deadline = record.info.get(_KEY)
        if deadline is not None:
            deadline.stop()

    def stop_reset(dbapi_connection: Any, record: Any, _reset_state: Any) -> None:
        stop_checked_in(dbapi_connection, record)  # before the pool's rollback on return

    event.listen(engine, "connect", connect)
    event.listen(engine, "before_cursor_execute", start)
    event.listen(engine, "commit", stop)
    event.listen(engine, "rollback", stop)
    event.listen(engine.pool, "reset", stop_reset)
    event.listen(engine.pool, "checkin", stop_checked_in)
