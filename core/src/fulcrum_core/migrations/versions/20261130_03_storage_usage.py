"""Per-plugin storage usage (``plugin_storage_usage``), the row each write keeps so a quota holds.

A plugin's documents, their bytes (key and JSON, UTF-8) and its counters, counted from the rows
already stored. Writes keep the row in the same transaction from now on.

Revision ID: 20261130_03_storage_usage
Revises: 20261130_02_idempotency_client
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261130_03_storage_usage"
down_revision: str | None = "20261130_02_idempotency_client"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plugin_storage_usage",
        sa.Column("plugin_id", sa.String(length=64), primary_key=True),
        sa.Column("documents", sa.BigInteger(), nullable=False),
        sa.Column("document_bytes", sa.BigInteger(), nullable=False),
        sa.Column("counters", sa.BigInteger(), nullable=False),
    )
    # Bytes as the host counts them: octet_length on PostgreSQL; SQLite's length() of a BLOB.
    postgres = op.get_bind().dialect.name == "postgresql"

    def size(column: sa.ColumnClause[str]) -> sa.ColumnElement[int]:
        return sa.func.octet_length(column) if postgres else sa.func.length(sa.cast(column, sa.LargeBinary))

    docs = sa.table("plugin_documents", sa.column("plugin_id"), sa.column("key"), sa.column("value"))
    counters = sa.table("plugin_counters", sa.column("plugin_id"))
    measures = ("documents", "document_bytes", "counters")
    usage = sa.table("plugin_storage_usage", sa.column("plugin_id"), *(sa.column(c) for c in measures))
    held = sa.union_all(
        sa.select(
            docs.c.plugin_id, sa.func.count().label("documents"),
            sa.func.sum(size(docs.c.key) + size(docs.c.value)).label("document_bytes"),
            sa.literal(0).label("counters"),
        ).group_by(docs.c.plugin_id),
        sa.select(counters.c.plugin_id, sa.literal(0), sa.literal(0), sa.func.count()).group_by(
            counters.c.plugin_id
        ),
    ).subquery("held")
    sums = (sa.func.sum(held.c[c]) for c in measures)
    totals = sa.select(held.c.plugin_id, *sums).group_by(held.c.plugin_id)
    op.execute(usage.insert().from_select(["plugin_id", *measures], totals))


def downgrade() -> None:
    op.drop_table("plugin_storage_usage")
