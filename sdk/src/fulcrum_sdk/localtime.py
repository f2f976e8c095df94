"""Local time for business rules: years, sale windows and reminders follow China Standard Time.

``ctx.now`` is timezone-aware UTC; these helpers turn it into the customer's calendar.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

__all__ = ["CHINA_TZ", "aware", "local_date"]

CHINA_TZ = timezone(timedelta(hours=8), "CST")
"""UTC+8 all year round (no daylight saving), so a fixed offset is exact."""


def aware(moment: datetime) -> datetime:
    """``moment`` with a timezone; a naive value (which ``ctx.now`` never is) is taken as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_date(moment: datetime) -> date:
    """The calendar date in China at ``moment``."""
    if moment.tzinfo is UTC:  # ctx.now: the fixed offset added, without asking UTC for its offset
        return (moment + _CHINA_OFFSET).date()
    return aware(moment).astimezone(CHINA_TZ).date()


_CHINA_OFFSET = timedelta(hours=8)
