"""The ``consents`` table: a customer's permission for one plugin to use some data scopes."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_core.data.base import CoreBase
from fulcrum_core.data.types import UTCDateTime

__all__ = ["CONSENT_STATUSES", "ConsentRow"]

CONSENT_STATUSES = ("awaiting", "authorised", "revoked", "expired")
"""Open-banking style consent states; ``expired`` is also derived from ``expires_at`` when read."""


class ConsentRow(CoreBase):
    """One consent: customer × plugin × scopes × purpose, with its status and expiry."""

    __tablename__ = "consents"
    __table_args__ = (
        CheckConstraint(
            "status IN ('awaiting', 'authorised', 'revoked', 'expired')", name="status"
        ),
        Index("ix_consents_customer_plugin", "customer_ref", "plugin_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64))
    plugin_id: Mapped[str] = mapped_column(String(64))
    # Space-separated and sorted, as in an OAuth ``scope`` parameter.
    scopes: Mapped[str] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
