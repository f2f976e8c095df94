"""The check-up for the customer in ``ctx``, fetched through the scoped data facade.

Every hook that shows a score goes through here, so the scope rules live in one place: no
``holdings:read`` means no report; no ``accounts:read`` skips the parts that need balances; no
``profile:risk`` scores suitability as unknown.
"""

from __future__ import annotations

from fulcrum_sdk import PluginContext
from fulcrum_sdk.localtime import local_date

from fulcrum_wealth_checkup.scoring import CheckUp, check_up

__all__ = ["assess"]


def assess(ctx: PluginContext) -> CheckUp | None:
    """The customer's check-up, or ``None`` without ``holdings:read`` or without assets."""
    data = ctx.data
    if not data.allows("holdings:read"):
        return None
    return check_up(
        holdings=data.holdings(),
        accounts=data.accounts() if data.allows("accounts:read") else None,
        risk=data.risk() if data.allows("profile:risk") else None,
        today=local_date(ctx.now),
    )
