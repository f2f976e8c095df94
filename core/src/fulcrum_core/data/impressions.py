"""``ImpressionStore``: what each customer was shown in which slot, for per-customer frequency caps."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select

from fulcrum_core.data.db import Database
from fulcrum_core.data.errors import domain_errors
from fulcrum_core.data.models.impression import ImpressionRow
from fulcrum_core.data.reconnect import idempotent_read

__all__ = ["ImpressionStore"]


class ImpressionStore:
    """Reads and writes the ``impressions`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @idempotent_read
    def count_since(self, customer_ref: str, slot: str, since: datetime) -> int:
        """How many items of ``slot`` the customer was shown at or after ``since``."""
        stmt = select(func.count()).where(
            ImpressionRow.customer_ref == customer_ref, ImpressionRow.slot == slot, ImpressionRow.at >= since
        )
        # Core, not the ORM: this runs on every home page with a capped slot.
        with domain_errors(), self._db.reader.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    @idempotent_read
    def nth_latest(self, customer_ref: str, slot: str, since: datetime, n: int) -> datetime | None:
        """When the customer was shown the ``n``-th most recent item of ``slot`` at or after ``since``
        (``None`` when fewer were shown): the slot stays at a cap of ``n`` until then plus its window."""
        stmt = (
            select(ImpressionRow.at)
            .where(ImpressionRow.customer_ref == customer_ref, ImpressionRow.slot == slot)
            .where(ImpressionRow.at >= since)
            .order_by(ImpressionRow.at.desc())
            .offset(n - 1)
            .limit(1)
        )
        with domain_errors(), self._db.reader.connect() as conn:
            return conn.execute(stmt).scalar_one_or_none()

    def record(self, customer_ref: str, slot: str, plugin_id: str, offer_key: str, at: datetime) -> int:
        """Remember that the customer was shown ``offer_key`` of ``plugin_id`` in ``slot`` at ``at``; the
        impression's id, for :meth:`forget`."""
        with self._db.session() as session:
            row = ImpressionRow(
                customer_ref=customer_ref, slot=slot, plugin_id=plugin_id, offer_key=offer_key, at=at
            )
            session.add(row)
            session.flush()
            return row.id

    def forget(self, ids: Sequence[int]) -> None:
        """Remove the impressions ``ids`` (recorded for items that were not shown after all)."""
        with self._db.begin() as conn:
            conn.execute(delete(ImpressionRow).where(ImpressionRow.id.in_(ids)))
