"""Used identity-provider assertion ids (``oauth_assertion_ids``): a replayed ``jti`` is refused by
every worker until the assertion expires.

Revision ID: 20261130_04_assertion_ids
Revises: 20261130_03_storage_usage
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_04_assertion_ids"
down_revision: str | None = "20261130_03_storage_usage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_assertion_ids",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id_hash", name=op.f("pk_oauth_assertion_ids")),
    )
    op.create_index("ix_oauth_assertion_ids_expires_at", "oauth_assertion_ids", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_oauth_assertion_ids_expires_at", table_name="oauth_assertion_ids")
    op.drop_table("oauth_assertion_ids")
