"""Reviews (one decision by one reviewer) and scope grants (what a release asked for and was given)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_registry.models._types import UtcDateTime
from fulcrum_registry.models.base import RegistryBase

__all__ = ["Review", "ScopeGrant"]


class Review(RegistryBase):
    """A reviewer's decision on a release, with reasons, checklist answers and the scopes they grant."""

    __tablename__ = "registry_reviews"
    __table_args__ = (CheckConstraint("decision IN ('approve', 'reject')", name="decision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("registry_releases.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(10))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    checklist: Mapped[dict[str, bool]] = mapped_column(JSON)
    granted: Mapped[list[str] | None] = mapped_column(JSON)  # approvals only: the scopes this reviewer grants
    at: Mapped[datetime] = mapped_column(UtcDateTime())


class ScopeGrant(RegistryBase):
    """One scope a release requested; ``granted`` is None until the release is decided."""

    __tablename__ = "registry_scope_grants"
    __table_args__ = (CheckConstraint("requirement IN ('required', 'optional')", name="requirement"),)

    release_id: Mapped[int] = mapped_column(ForeignKey("registry_releases.id"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    requirement: Mapped[str] = mapped_column(String(10))
    granted: Mapped[bool | None] = mapped_column(Boolean)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    def as_row(self) -> dict[str, Any]:
        """The grant as plain data, for audit payloads."""
        return {"scope": self.scope, "requirement": self.requirement, "granted": self.granted}
