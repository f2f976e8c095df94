"""The ``impressions`` table: which slot items a customer was shown, for frequency caps."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fulcrum_core.data.base import CoreBase
from fulcrum_core.data.types import UTCDateTime

__all__ = ["ImpressionRow"]


class ImpressionRow(CoreBase):
    """One item shown to one customer in one slot at one time."""

    __tablename__ = "impressions"
    __table_args__ = (Index("ix_impressions_customer_slot_at", "customer_ref", "slot", "at"),)

    # SQLite only auto-increments an INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    customer_ref: Mapped[str] = mapped_column(String(64))
    slot: Mapped[str] = mapped_column(String(64))
    plugin_id: Mapped[str] = mapped_column(String(64))
    offer_key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
