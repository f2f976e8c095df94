"""Publishers: the departments, branches and partners that ship plugins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, String, false
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_registry.models._types import UtcDateTime
from fulcrum_registry.models.base import RegistryBase

__all__ = ["PUBLISHER_KINDS", "Publisher"]

PUBLISHER_KINDS: tuple[str, ...] = ("department", "branch", "partner")


class Publisher(RegistryBase):
    """One publisher; its ``kind`` decides how much its plugins are trusted."""

    __tablename__ = "registry_publishers"
    __table_args__ = (CheckConstraint("kind IN ('department', 'branch', 'partner')", name="kind"),)

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))  # zh-CN display name
    name_en: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    verified: Mapped[bool] = mapped_column(Boolean)
    # The platform team's kill switch for everything the publisher ships (reversible, audited).
    suspended: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    contact: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
