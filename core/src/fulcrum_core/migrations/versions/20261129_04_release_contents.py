"""Each release's wheel contents (``registry_releases.contents``): member path -> sha256 of its bytes.

Hosts compare an installed plugin's files with the approved wheel's. Releases filed before this
revision keep NULL; the registry derives their map from the stored artifact when a host asks.

Revision ID: 20261129_04_release_contents
Revises: 20261129_03_attempt_repeats
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261129_04_release_contents"
down_revision: str | None = "20261129_03_attempt_repeats"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("registry_releases", sa.Column("contents", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("registry_releases") as batch:
        batch.drop_column("contents")
