"""The check-up for the customer in ``ctx``, fetched through the scoped data facade.

Every hook that shows a score goes through here, so the scope rules live in one place: no
``holdings:read`` means no report; no ``accounts:read`` skips the parts that need balances; no
``profile:risk`` scores suitability as unknown.
"""

from __future__ import annotations

from fulcrum_sdk import PluginContext
from fulcrum_sdk.localtime import local_date

from fulcrum_wealth_checkup.scoring import CheckUp, Glance, glance

__all__ = ["assess", "glance_at"]


def glance_at(ctx: PluginContext) -> Glance | None:
    """The customer's score without the report's text, or ``None`` without ``holdings:read`` or assets.

    What the display hooks use: they show the score and at most one part's text.
    """
    data = ctx.data
    if not data.allows("holdings:read"):
        return None
    return glance(
        holdings=data.holdings(),
        accounts=data.accounts() if data.allows("accounts:read") else None,
        risk=data.risk() if data.allows("profile:risk") else None,
        today=local_date(ctx.now),
    )


def assess(ctx: PluginContext) -> CheckUp | None:
    """The customer's full check-up, every part explained, or ``None`` as for :func:`glance_at`."""
    seen = glance_at(ctx)
    return None if seen is None else seen.report()
