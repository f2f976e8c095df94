"""Local time for business rules: sale windows and assessment expiry follow China Standard Time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

__all__ = ["CHINA_TZ", "local_date"]

CHINA_TZ = timezone(timedelta(hours=8), "CST")
"""UTC+8 all year round (no daylight saving), so a fixed offset is exact."""


def local_date(now: datetime) -> date:
    """The calendar date in China at ``now`` (``ctx.now``, timezone-aware; naive means UTC)."""
    aware = now if now.tzinfo else now.replace(tzinfo=UTC)
    return aware.astimezone(CHINA_TZ).date()
