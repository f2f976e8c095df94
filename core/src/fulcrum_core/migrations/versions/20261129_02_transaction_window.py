"""The retry window of transactions the plugin never saw: ``first_seen_at`` on the journal.

A retry runs such a transaction again only within ``transaction_retry_window_seconds`` of the first
request under its key; a retry dates the row anew (``created_at``), so when the key was first seen is
kept apart. Rows journaled before this revision get their first attempt's time: ``created_at`` when
no retry ran them again, else when the first refused attempt was answered (moments after it arrived).

Revision ID: 20261129_02_transaction_window
Revises: 20261129_01_transaction_attempts
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_02_transaction_window"
down_revision: str | None = "20261129_01_transaction_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("transactions", sa.Column("first_seen_at", _TS, nullable=True))
    transactions = sa.table(
        "transactions", sa.column("id"), sa.column("created_at"), sa.column("first_seen_at")
    )
    attempts = sa.table("transaction_attempts", sa.column("transaction_id"), sa.column("finished_at"))
    first_answered = (
        sa.select(sa.func.min(attempts.c.finished_at))
        .where(attempts.c.transaction_id == transactions.c.id)
        .scalar_subquery()
    )
    op.execute(
        transactions.update().values(
            first_seen_at=sa.func.coalesce(first_answered, transactions.c.created_at)
        )
    )
    with op.batch_alter_table("transactions") as batch:
        batch.alter_column("first_seen_at", existing_type=_TS, nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("first_seen_at")
