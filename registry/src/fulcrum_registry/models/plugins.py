"""Plugins (an id a publisher owns) and their releases (one submitted wheel each)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_registry.models._types import UtcDateTime
from fulcrum_registry.models.base import RegistryBase

__all__ = ["Plugin", "Release"]


class Plugin(RegistryBase):
    """A plugin id, claimed by the publisher of its first submission; names follow the latest release."""

    __tablename__ = "registry_plugins"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    publisher_id: Mapped[str] = mapped_column(ForeignKey("registry_publishers.id"), index=True)
    name: Mapped[str] = mapped_column(String(400))  # zh-CN, from the latest valid manifest
    name_en: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Release(RegistryBase):
    """One submitted wheel: its manifest snapshot, artifact, check results and state.

    ``plugin_id`` is empty only when the wheel's manifest could not be read or names a plugin the
    submitting publisher may not claim; such releases are always ``checks_failed``.
    """

    __tablename__ = "registry_releases"
    __table_args__ = (
        CheckConstraint(
            "state IN ('submitted', 'checks_failed', 'in_review', 'approved', 'rejected', "
            "'suspended', 'retired')",
            name="state",
        ),
        Index("ix_registry_releases_plugin_state", "plugin_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plugin_id: Mapped[str | None] = mapped_column(ForeignKey("registry_plugins.id"))
    publisher_id: Mapped[str] = mapped_column(ForeignKey("registry_publishers.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    artifact_sha256: Mapped[str] = mapped_column(String(64), index=True)
    artifact_size: Mapped[int] = mapped_column(BigInteger)
    artifact_filename: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(20), index=True)
    submitted_by: Mapped[str] = mapped_column(String(200))
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # Member path -> sha256 hex of the wheel's bytes (RECORD left out): hosts compare installed files
    # with it. NULL for releases filed before it was recorded: then derived from the stored artifact.
    contents: Mapped[dict[str, str] | None] = mapped_column(JSON)
