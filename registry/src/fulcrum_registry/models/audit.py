"""The audit log: one row per state change or grant, each holding the hash of the one before."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_registry.models._types import UtcDateTime
from fulcrum_registry.models.base import RegistryBase

__all__ = ["AuditEvent"]


class AuditEvent(RegistryBase):
    """An audit row; ``seq`` is assigned by the writer (last + 1) so a gap or a race is visible."""

    __tablename__ = "registry_audit"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(120), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
