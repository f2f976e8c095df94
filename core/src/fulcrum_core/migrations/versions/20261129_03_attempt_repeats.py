"""Repeated attempts kept as one history row: ``repeats`` and ``last_finished_at`` on
``transaction_attempts``.

A client that retries a never-asked transaction while its plugin's breaker stays open starts an
attempt per retry, each refused the same way: the history keeps one row per run of such attempts,
counting them, instead of one row per retry. Existing rows are runs of one.

Revision ID: 20261129_03_attempt_repeats
Revises: 20261129_02_transaction_window
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_03_attempt_repeats"
down_revision: str | None = "20261129_02_transaction_window"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "transaction_attempts", sa.Column("repeats", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("transaction_attempts", sa.Column("last_finished_at", _TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("transaction_attempts") as batch:
        batch.drop_column("last_finished_at")
        batch.drop_column("repeats")
