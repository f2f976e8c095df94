"""``ix_transactions_retryable_first_seen_at``: a partial index for ``Journal.retryable_since``.

Expiry lists failed, retryable rows first seen before a cutoff, oldest first (``first_seen_at``,
``id``); only the status index served it, which scans every failed row. Few rows are ever retryable,
so the index holds only those (``WHERE retryable``).

Revision ID: 20261129_06_retryable_index
Revises: 20261129_05_publisher_suspension
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_06_retryable_index"
down_revision: str | None = "20261129_05_publisher_suspension"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NAME = "ix_transactions_retryable_first_seen_at"


def upgrade() -> None:
    op.create_index(
        _NAME,
        "transactions",
        ["first_seen_at", "id"],
        sqlite_where=sa.text("retryable = 1"),
        postgresql_where=sa.text("retryable"),
    )


def downgrade() -> None:
    op.drop_index(_NAME, table_name="transactions")
