"""The ``transactions`` journal: one row per (customer, OAuth client, idempotency key), written before
execution."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_core.data.base import CoreBase
from fulcrum_core.data.types import UTCDateTime

__all__ = ["TRANSACTION_STATUSES", "UNRECORDED_CLIENT", "TransactionAttemptRow", "TransactionRow"]

TRANSACTION_STATUSES = ("pending", "succeeded", "failed", "unknown")
"""``pending`` until the plugin answers; ``unknown`` when it missed its deadline (reconcile it)."""

UNRECORDED_CLIENT = ""
"""``client_id`` of a row journaled before keys were scoped per client (revision
``20261130_02_idempotency_client``), when nothing recorded which client sent it. No OAuth client has
an empty id. Such a row keeps the scope it was journaled under, the customer's: any client of that
customer sending its key finds it (see ``Journal.find``)."""


def _created_at(context: Any) -> Any:
    """``first_seen_at`` of a row inserted without one: its ``created_at`` (its first attempt's)."""
    return context.get_current_parameters()["created_at"]


class TransactionRow(CoreBase):
    """A journaled transaction request, its outcome, and the response replayed for retries."""

    __tablename__ = "transactions"
    __table_args__ = (
        # Keys are the client's own, as payment APIs scope them per API credential: the app and a
        # partner's backend acting for the same customer never meet under a key they both chose.
        UniqueConstraint(
            "customer_ref", "client_id", "idempotency_key", name="uq_transactions_customer_client_key"
        ),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'unknown')", name="status"),
        Index("ix_transactions_status_updated_at", "status", "updated_at"),
        # Journal.retryable_since: retryable rows oldest first (expiry's sweep, a keyset listing).
        # Partial, as few rows are ever retryable; the predicate is written as SQLAlchemy renders a
        # bare boolean in each dialect, so the planner can match the query's WHERE to it.
        Index(
            "ix_transactions_retryable_first_seen_at",
            "first_seen_at",
            "id",
            sqlite_where=text("retryable = 1"),
            postgresql_where=text("retryable"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64))
    # The OAuth client whose token sent the request (the app, a plugin's backend): its key space.
    # ``UNRECORDED_CLIENT`` for rows journaled before it was recorded.
    client_id: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    # sha256 of the canonical request body: a retry must send the same request.
    request_hash: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    plugin_id: Mapped[str] = mapped_column(String(64))
    params: Mapped[Any] = mapped_column(JSON)
    amount_fen: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    risk_level: Mapped[str | None] = mapped_column(String(2), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    result: Mapped[Any | None] = mapped_column(JSON, nullable=True)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When its current attempt was journaled (a retry that runs it again dates it anew): the
    # ``created_at`` and ``ctx.now`` its plugin is asked with, reconciliation included.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the customer's first request under this key was journaled; a retry that runs the
    # transaction again keeps it: a never-asked transaction may be run only within the retry window
    # (``Settings.transaction_retry_window_seconds``) from here.
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=_created_at)
    # How many times the host has started it: a retry runs it again only when the last attempt ended
    # before the plugin was asked (``retryable``), and the outcome it replaces goes to
    # ``transaction_attempts``.
    attempts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The outcome (a ``failed`` 503) says the plugin was never asked to act: its breaker or bulkhead
    # refused the call, or it was switched off after the checks. A retry with the same key and body
    # runs the transaction again; every other outcome is final and replayed.
    retryable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class TransactionAttemptRow(CoreBase):
    """An earlier attempt of a transaction, kept when a retry ran the transaction again (or ended it:
    its retry window closed): what that attempt answered (always an outcome the plugin never saw; see
    ``TransactionRow.retryable``), and how many attempts right after it ended the same way."""

    __tablename__ = "transaction_attempts"

    transaction_id: Mapped[str] = mapped_column(String(32), ForeignKey("transactions.id"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    plugin_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When the attempt's outcome was journaled.
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Attempts ``attempt + 1`` … ``attempt + repeats`` ended the same way (plugin, status, response
    # status), as when a client retries while the plugin's breaker stays open: one row per such run,
    # not one per retry. ``response_body`` is the first one's; ``last_finished_at`` the last one's time.
    repeats: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
