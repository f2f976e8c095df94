"""The host's tables: transaction journal, plugin storage, consents, impressions.

Revision ID: 20261128_01_core
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261128_01_core"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('awaiting', 'authorised', 'revoked', 'expired')", name=op.f("ck_consents_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index("ix_consents_customer_plugin", "consents", ["customer_ref", "plugin_id"])

    op.create_table(
        "impressions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.String(length=64), nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("offer_key", sa.String(length=64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_impressions")),
    )
    op.create_index("ix_impressions_customer_slot_at", "impressions", ["customer_ref", "slot", "at"])

    for table in ("plugin_counters", "plugin_documents"):
        op.create_table(
            table,
            sa.Column("plugin_id", sa.String(length=64), nullable=False),
            sa.Column("key", sa.String(length=200), nullable=False),
            sa.Column("value", sa.BigInteger() if table == "plugin_counters" else sa.Text(), nullable=False),
            sa.Column("updated_at", _TS, nullable=False),
            sa.PrimaryKeyConstraint("plugin_id", "key", name=op.f(f"pk_{table}")),
        )

    op.create_table(
        "transactions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("customer_ref", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("plugin_id", sa.String(length=64), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=True),
        sa.Column("risk_level", sa.String(length=2), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'unknown')", name=op.f("ck_transactions_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint("customer_ref", "idempotency_key", name=op.f("uq_transactions_customer_ref")),
    )
    op.create_index("ix_transactions_status_updated_at", "transactions", ["status", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_transactions_status_updated_at", table_name="transactions")
    op.drop_table("transactions")
    op.drop_table("plugin_documents")
    op.drop_table("plugin_counters")
    op.drop_index("ix_impressions_customer_slot_at", table_name="impressions")
    op.drop_table("impressions")
    op.drop_index("ix_consents_customer_plugin", table_name="consents")
    op.drop_table("consents")
