"""The transaction journal: insert-first under a unique (customer, client, idempotency key), then finish.

A key is the OAuth client's own: the app and a partner plugin's backend acting for one customer may
both send ``k-1``, and get two transactions. Rows journaled before the client was recorded
(``UNRECORDED_CLIENT``) keep the customer-wide scope they were written under: ``find`` returns such a
row to any client of the customer, so a retry across the upgrade never runs a transaction twice (the
service replays it only to a client that may have sent it, and refuses the key to any other).

``insert_pending`` is one ``INSERT … ON CONFLICT DO NOTHING RETURNING id`` committed on its own: of
any number of concurrent requests with the same key exactly one gets its row in, and only that one
goes on to call the plugin. The others read the winner's row and replay it (or get 409 while it is
still pending).

A row whose outcome says the plugin was never asked (``retryable``) is taken back to ``pending`` by
``reclaim``, one ``UPDATE`` that only the retry holding the row's current attempt number can make:
of concurrent retries exactly one runs the transaction again, and the outcome it replaces is kept in
``transaction_attempts`` in the same database transaction (attempts in a row that ended alike, as
retries into an open breaker do, share one history row that counts them). ``expire`` ends such a row
for good, under the same condition, once its retry window has closed.
"""

from __future__ import annotations

import builtins
import hashlib
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, and_, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from fulcrum_core.data._upsert import insert_for
from fulcrum_core.data.db import Database
from fulcrum_core.data.models.transaction import UNRECORDED_CLIENT, TransactionAttemptRow, TransactionRow
from fulcrum_core.data.reconnect import idempotent_read
from fulcrum_core.data.types import utcnow

__all__ = ["Journal", "plugin_idempotency_key"]

_TABLE = cast(Table, TransactionRow.__table__)


def plugin_idempotency_key(row: TransactionRow) -> str:
    """The idempotency key ``row``'s plugin is handed (``TransactionRequest.idempotency_key``) on every
    call about it: unique among the customer's transactions, as the plugin keys its own side effects
    by customer and key (``run_once``), and the same on every call (a retry, reconciliation).

    The hex sha256 of the client id and the key: the client's key alone would let the app's
    transaction and a partner backend's under the same key share the plugin's stored result. A row
    from before clients were recorded keeps its bare key, the one its plugin was first asked with.
    Keys are visible ASCII without NUL, so the digest's input is unambiguous."""
    if row.client_id == UNRECORDED_CLIENT:
        return row.idempotency_key
    return hashlib.sha256(f"{row.client_id}\x00{row.idempotency_key}".encode()).hexdigest()


def _after(
    stmt: Select[Any], column: InstrumentedAttribute[datetime], after: TransactionRow | None
) -> Select[Any]:
    """``stmt`` (ordered by ``column``, then id) kept to the rows after ``after`` in that order: the
    next page of a keyset listing."""
    if after is None:
        return stmt
    value = getattr(after, column.key)
    return stmt.where(or_(column > value, and_(column == value, TransactionRow.id > after.id)))


def _unchanged_retryable(row: TransactionRow) -> tuple[ColumnElement[bool], ...]:
    """Conditions under which ``row`` (as read: failed, retryable) is still that row: no retry ran or
    ended it since (its attempt count moved on)."""
    return (
        TransactionRow.id == row.id,
        TransactionRow.status == "failed",
        TransactionRow.retryable.is_(True),
        TransactionRow.attempts == row.attempts,
    )


class Journal:
    """Reads and writes the ``transactions`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @idempotent_read
    def find(self, customer_ref: str, client_id: str, idempotency_key: str) -> TransactionRow | None:
        """The row ``client_id`` journaled for the customer under ``idempotency_key``, or else the
        customer's row under that key from before clients were recorded; ``None`` if neither exists.
        (Both never exist: no row is journaled under a key an unrecorded row holds.)"""
        stmt = (
            select(TransactionRow)
            .where(
                TransactionRow.customer_ref == customer_ref,
                TransactionRow.client_id.in_((client_id, UNRECORDED_CLIENT)),
                TransactionRow.idempotency_key == idempotency_key,
            )
            # The client's own row first, should both ever exist.
            .order_by((TransactionRow.client_id == UNRECORDED_CLIENT).asc())
            .limit(1)
        )
        with self._db.read_session() as session:
            return session.scalars(stmt).one_or_none()

    @idempotent_read
    def get(self, tx_id: str) -> TransactionRow | None:
        """The row with id ``tx_id``, if any."""
        with self._db.read_session() as session:
            return session.get(TransactionRow, tx_id)

    def insert_pending(self, row: TransactionRow) -> bool:
        """Commit ``row`` as ``pending``; ``False`` when its client already used its key for the customer."""
        values = {c.key: getattr(row, c.key) for c in TransactionRow.__mapper__.column_attrs}
        values.update(status="pending", attempts=1, retryable=False)
        stmt = (
            insert_for(self._db.dialect, _TABLE)
            .values(**values)
            .on_conflict_do_nothing(
                index_elements=[_TABLE.c.customer_ref, _TABLE.c.client_id, _TABLE.c.idempotency_key]
            )
            .returning(_TABLE.c.id)
        )
        with self._db.begin() as conn:
            return conn.execute(stmt).scalar_one_or_none() is not None

    def finish(
        self,
        tx_id: str,
        *,
        status: str,
        result: Any | None,
        response_status: int,
        response_body: str,
        now: datetime | None = None,
        retryable: bool = False,
        attempt: int | None = None,
    ) -> bool:
        """Record the outcome of a pending (or reconciled-as-unknown) row; ``False`` if already final.
        ``retryable``: the plugin was never asked, so a retry with the same key may run it again.
        ``attempt``: the attempt the outcome belongs to; ``False`` if a retry has started a later one
        (a write repeated after its commit went unacknowledged must not overwrite the retry's row)."""
        stmt = (
            update(TransactionRow)
            .where(TransactionRow.id == tx_id, TransactionRow.status.in_(("pending", "unknown")))
            .values(
                status=status,
                result=result,
                response_status=response_status,
                response_body=response_body,
                updated_at=now or utcnow(),
                retryable=retryable,
            )
            .returning(TransactionRow.id)
        )
        if attempt is not None:
            stmt = stmt.where(TransactionRow.attempts == attempt)
        with self._db.session() as session:
            return session.execute(stmt).scalar_one_or_none() is not None

    def reclaim(
        self, row: TransactionRow, *, plugin_id: str, amount_fen: int | None, risk_level: str | None,
        now: datetime, first_seen_after: datetime | None = None,
    ) -> TransactionRow | None:
        """Start the next attempt of ``row`` (as read, ``retryable``): back to ``pending`` with its
        stored response cleared and dated ``now`` (the plugin never saw it before: it is carried out
        now), the outcome it had kept as an earlier attempt; the row as it is now. ``None`` when the
        row is no longer the one read (a concurrent retry took it first), or when it was first seen
        at or before ``first_seen_after`` (its retry window closed meanwhile)."""
        fresh: dict[str, Any] = {
            "status": "pending",
            "retryable": False,
            "attempts": row.attempts + 1,
            "plugin_id": plugin_id,
            "amount_fen": amount_fen,
            "risk_level": risk_level,
            "result": None,
            "response_status": None,
            "response_body": None,
            "created_at": now,
            "updated_at": now,
        }
        stmt = (
            update(TransactionRow)
            .where(*_unchanged_retryable(row))
            .values(**fresh)
            .returning(TransactionRow.id)
        )
        if first_seen_after is not None:
            stmt = stmt.where(TransactionRow.first_seen_at > first_seen_after)
        with self._db.session() as session:
            if session.execute(stmt).scalar_one_or_none() is None:
                return None
            # The update holds the row until this commits: the attempt read is the one replaced.
            self._keep_attempt(session, row)
        values = {c.key: getattr(row, c.key) for c in TransactionRow.__mapper__.column_attrs}
        return TransactionRow(**{**values, **fresh})

    def expire(self, row: TransactionRow, *, response_status: int, response_body: str, now: datetime) -> bool:
        """End ``row`` (as read, ``retryable``) for good without running it: its retry window closed.
        It stays ``failed``, is no longer retryable and answers ``response_body`` from now on; the
        outcome it replaces is kept as its last attempt's. ``False`` when the row is no longer the one
        read (a concurrent retry ran or ended it first)."""
        stmt = (
            update(TransactionRow)
            .where(*_unchanged_retryable(row))
            .values(
                retryable=False, response_status=response_status, response_body=response_body, updated_at=now
            )
            .returning(TransactionRow.id)
        )
        with self._db.session() as session:
            if session.execute(stmt).scalar_one_or_none() is None:
                return False
            self._keep_attempt(session, row)
        return True

    @staticmethod
    def _keep_attempt(session: Session, row: TransactionRow) -> None:
        """Add the outcome of ``row`` as read (an attempt the plugin never saw) to its history: as one
        more repeat of the latest history row when the attempt before ended the same way (a client
        retrying into an open breaker adds no row per retry), else as a row of its own. The caller's
        update of ``row`` holds it, so no other attempt writes its history meanwhile."""
        latest = session.scalars(
            select(TransactionAttemptRow)
            .where(TransactionAttemptRow.transaction_id == row.id)
            .order_by(TransactionAttemptRow.attempt.desc())
            .limit(1)
        ).one_or_none()
        if (
            latest is not None
            and latest.attempt + latest.repeats == row.attempts - 1
            and (latest.plugin_id, latest.status, latest.response_status)
            == (row.plugin_id, row.status, row.response_status)
        ):
            latest.repeats += 1
            latest.last_finished_at = row.updated_at
            return
        session.add(
            TransactionAttemptRow(
                transaction_id=row.id,
                attempt=row.attempts,
                plugin_id=row.plugin_id,
                status=row.status,
                response_status=row.response_status,
                response_body=row.response_body,
                finished_at=row.updated_at,
            )
        )

    def pending_before(
        self, cutoff: datetime, *, limit: int = 500, after: TransactionRow | None = None
    ) -> builtins.list[TransactionRow]:
        """Rows still ``pending`` that were last touched before ``cutoff``, oldest first; with ``after``,
        only those after that row in this order (the next page)."""
        stmt = (
            select(TransactionRow)
            .where(TransactionRow.status == "pending", TransactionRow.updated_at < cutoff)
            .order_by(TransactionRow.updated_at, TransactionRow.id)
            .limit(limit)
        )
        stmt = _after(stmt, TransactionRow.updated_at, after)
        with self._db.read_session() as session:
            return list(session.scalars(stmt))

    def retryable_since(
        self, cutoff: datetime, *, limit: int = 500, after: TransactionRow | None = None
    ) -> builtins.list[TransactionRow]:
        """Retryable rows first seen at or before ``cutoff`` (their retry window has closed), oldest
        first; with ``after``, only those after that row in this order (the next page)."""
        stmt = (
            select(TransactionRow)
            .where(
                TransactionRow.status == "failed",
                # A bare boolean (not IS true), as ix_transactions_retryable_first_seen_at's predicate is.
                TransactionRow.retryable,
                TransactionRow.first_seen_at <= cutoff,
            )
            .order_by(TransactionRow.first_seen_at, TransactionRow.id)
            .limit(limit)
        )
        stmt = _after(stmt, TransactionRow.first_seen_at, after)
        with self._db.read_session() as session:
            return list(session.scalars(stmt))

    def mark_unknown(self, tx_id: str, *, response_status: int, response_body: str, now: datetime) -> bool:
        """Move a ``pending`` row to ``unknown`` with its replayable response; ``False`` if it moved on."""
        stmt = (
            update(TransactionRow)
            .where(TransactionRow.id == tx_id, TransactionRow.status == "pending")
            .values(
                status="unknown", response_status=response_status, response_body=response_body, updated_at=now
            )
            .returning(TransactionRow.id)
        )
        with self._db.session() as session:
            return session.execute(stmt).scalar_one_or_none() is not None

    def by_status(
        self, status: str, *, limit: int = 500, after: TransactionRow | None = None
    ) -> builtins.list[TransactionRow]:
        """Rows in ``status``, oldest first (for reconciliation and operations); with ``after``, only
        those that come after that row in this order (the next page)."""
        stmt = (
            select(TransactionRow)
            .where(TransactionRow.status == status)
            .order_by(TransactionRow.created_at, TransactionRow.id)
            .limit(limit)
        )
        stmt = _after(stmt, TransactionRow.created_at, after)
        with self._db.read_session() as session:
            return list(session.scalars(stmt))
