"""``consent_id`` on ``oauth_token_families``: the customer's consent an authorization rests on.

A plugin's refresh-token family started by an authorization that recorded a consent names it, so a
refresh reads that consent: once it has expired or been revoked no token joins the family, and no
refresh token outlives it. A partner's tokens name the customer by a pairwise id, from which the
consent cannot be found, hence the column. Families stored before it name none and stay as they were.

Revision ID: 20261201_01_family_consent
Revises: 20261130_04_assertion_ids
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261201_01_family_consent"
down_revision: str | None = "20261130_04_assertion_ids"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("oauth_token_families", sa.Column("consent_id", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_token_families") as batch:
        batch.drop_column("consent_id")
