"""``registry_publishers.suspended``: the platform team's kill switch for everything a publisher ships.

Existing publishers are not suspended. The downgrade refuses while any publisher is suspended: the
older schema cannot record it, and dropping the column would let that publisher's plugins run again.

Revision ID: 20261129_05_publisher_suspension
Revises: 20261129_04_release_contents
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_05_publisher_suspension"
down_revision: str | None = "20261129_04_release_contents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "registry_publishers",
        sa.Column("suspended", sa.Boolean(), server_default=sa.false(), nullable=False),
    )


def downgrade() -> None:
    suspended = [
        str(row[0])
        for row in op.get_bind().execute(
            sa.text("SELECT id FROM registry_publishers WHERE suspended ORDER BY id")
        )
    ]
    if suspended:
        one = len(suspended) == 1
        who = f"publisher {suspended[0]} is" if one else f"publishers {', '.join(suspended)} are"
        them = "it" if one else "them"
        raise RuntimeError(
            f"{who} suspended, which the older schema cannot record: "
            f"reinstate {them} (fulcrum registry reinstate-publisher) or suspend their releases first"
        )
    with op.batch_alter_table("registry_publishers") as batch:
        batch.drop_column("suspended")
