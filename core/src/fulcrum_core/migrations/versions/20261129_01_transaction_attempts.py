"""Transactions a retry may run again: ``attempts`` and ``retryable`` on the journal, and the
``transaction_attempts`` history of the outcomes a retry replaced.

Rows journaled before this revision are final (``retryable`` false): a 503 among them may have been
journaled by reconciliation over an outcome the first attempt may have applied.

Revision ID: 20261129_01_transaction_attempts
Revises: 20261128_03_oauth
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_01_transaction_attempts"
down_revision: str | None = "20261128_03_oauth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("transactions", sa.Column("attempts", sa.Integer(), server_default="1", nullable=False))
    op.add_column(
        "transactions", sa.Column("retryable", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.create_table(
        "transaction_attempts",
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("finished_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["transaction_id"], ["transactions.id"],
            name=op.f("fk_transaction_attempts_transaction_id_transactions"),
        ),
        sa.PrimaryKeyConstraint("transaction_id", "attempt", name=op.f("pk_transaction_attempts")),
    )


def downgrade() -> None:
    op.drop_table("transaction_attempts")
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("retryable")
        batch.drop_column("attempts")
