"""The registry's tables: publishers, plugins, releases, reviews, scope grants, audit log.

Revision ID: 20261128_02_registry
Revises: 20261128_01_core
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261128_02_registry"
down_revision: str | None = "20261128_01_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_STATES = "'submitted', 'checks_failed', 'in_review', 'approved', 'rejected', 'suspended', 'retired'"


def upgrade() -> None:
    op.create_table(
        "registry_audit",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_registry_audit")),
    )
    op.create_index(op.f("ix_registry_audit_action"), "registry_audit", ["action"])
    op.create_index(op.f("ix_registry_audit_subject"), "registry_audit", ["subject"])

    op.create_table(
        "registry_publishers",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("contact", sa.String(length=320), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.CheckConstraint(
            "kind IN ('department', 'branch', 'partner')", name=op.f("ck_registry_publishers_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_publishers")),
    )

    op.create_table(
        "registry_plugins",
        sa.Column("id", sa.String(length=50), nullable=False),
        sa.Column("publisher_id", sa.String(length=50), nullable=False),
        sa.Column("name", sa.String(length=400), nullable=False),
        sa.Column("name_en", sa.String(length=400), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["registry_publishers.id"],
            name=op.f("fk_registry_plugins_publisher_id_registry_publishers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_plugins")),
    )
    op.create_index(op.f("ix_registry_plugins_publisher_id"), "registry_plugins", ["publisher_id"])

    op.create_table(
        "registry_releases",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plugin_id", sa.String(length=50), nullable=True),
        sa.Column("publisher_id", sa.String(length=50), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=True),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("artifact_size", sa.BigInteger(), nullable=False),
        sa.Column("artifact_filename", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=False),
        sa.Column("submitted_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.CheckConstraint(f"state IN ({_STATES})", name=op.f("ck_registry_releases_state")),
        sa.ForeignKeyConstraint(
            ["plugin_id"],
            ["registry_plugins.id"],
            name=op.f("fk_registry_releases_plugin_id_registry_plugins"),
        ),
        sa.ForeignKeyConstraint(
            ["publisher_id"],
            ["registry_publishers.id"],
            name=op.f("fk_registry_releases_publisher_id_registry_publishers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_releases")),
    )
    op.create_index(op.f("ix_registry_releases_artifact_sha256"), "registry_releases", ["artifact_sha256"])
    op.create_index("ix_registry_releases_plugin_state", "registry_releases", ["plugin_id", "state"])
    op.create_index(op.f("ix_registry_releases_publisher_id"), "registry_releases", ["publisher_id"])
    op.create_index(op.f("ix_registry_releases_state"), "registry_releases", ["state"])

    op.create_table(
        "registry_reviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("decision", sa.String(length=10), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("checklist", sa.JSON(), nullable=False),
        sa.Column("granted", sa.JSON(), nullable=True),
        sa.Column("at", _TS, nullable=False),
        sa.CheckConstraint("decision IN ('approve', 'reject')", name=op.f("ck_registry_reviews_decision")),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["registry_releases.id"],
            name=op.f("fk_registry_reviews_release_id_registry_releases"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_reviews")),
    )
    op.create_index(op.f("ix_registry_reviews_release_id"), "registry_reviews", ["release_id"])

    op.create_table(
        "registry_scope_grants",
        sa.Column("release_id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("requirement", sa.String(length=10), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=True),
        sa.Column("decided_at", _TS, nullable=True),
        sa.CheckConstraint(
            "requirement IN ('required', 'optional')", name=op.f("ck_registry_scope_grants_requirement")
        ),
        sa.ForeignKeyConstraint(
            ["release_id"],
            ["registry_releases.id"],
            name=op.f("fk_registry_scope_grants_release_id_registry_releases"),
        ),
        sa.PrimaryKeyConstraint("release_id", "scope", name=op.f("pk_registry_scope_grants")),
    )
    op.create_index(op.f("ix_registry_scope_grants_scope"), "registry_scope_grants", ["scope"])


def downgrade() -> None:
    for index, table in (
        ("ix_registry_scope_grants_scope", "registry_scope_grants"),
        ("ix_registry_reviews_release_id", "registry_reviews"),
        ("ix_registry_releases_state", "registry_releases"),
        ("ix_registry_releases_publisher_id", "registry_releases"),
        ("ix_registry_releases_plugin_state", "registry_releases"),
        ("ix_registry_releases_artifact_sha256", "registry_releases"),
        ("ix_registry_plugins_publisher_id", "registry_plugins"),
        ("ix_registry_audit_subject", "registry_audit"),
        ("ix_registry_audit_action", "registry_audit"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "registry_scope_grants",
        "registry_reviews",
        "registry_releases",
        "registry_plugins",
        "registry_publishers",
        "registry_audit",
    ):
        op.drop_table(table)
