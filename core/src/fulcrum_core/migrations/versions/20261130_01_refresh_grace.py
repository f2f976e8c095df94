"""``grace_reuses`` on ``oauth_refresh_tokens``: how often a rotated token was accepted again.

Within the rotation grace period (the setting ``refresh_reuse_grace_seconds``) a refresh token its
client presents again shortly after rotating it gets another token of its family instead of revoking
the family, a bounded number of times per token; the column counts them. Existing rows start at 0.

Revision ID: 20261130_01_refresh_grace
Revises: 20261129_06_retryable_index
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_01_refresh_grace"
down_revision: str | None = "20261129_06_retryable_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "oauth_refresh_tokens", sa.Column("grace_reuses", sa.Integer(), server_default="0", nullable=False)
    )


def downgrade() -> None:
    with op.batch_alter_table("oauth_refresh_tokens") as batch:
        batch.drop_column("grace_reuses")
