"""Time for business rules: coupon windows are written in China Standard Time, compared as instants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

__all__ = ["CHINA_TZ", "aware", "local_date"]

CHINA_TZ = timezone(timedelta(hours=8), "CST")
"""UTC+8 all year round (no daylight saving), so a fixed offset is exact."""


def aware(now: datetime) -> datetime:
    """``now`` with a timezone; a naive value (which ``ctx.now`` should never be) is taken as UTC."""
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def local_date(moment: datetime) -> date:
    """The calendar date in China at ``moment``."""
    return aware(moment).astimezone(CHINA_TZ).date()
