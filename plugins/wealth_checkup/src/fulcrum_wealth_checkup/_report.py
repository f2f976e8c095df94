"""The check-up for the customer in ``ctx``, fetched through the scoped data facade.

Every hook that shows a score goes through here, so the scope rules live in one place: no
``holdings:read`` means no report; no ``accounts:read`` skips the parts that need balances; no
``profile:risk`` scores suitability as unknown.
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Final

from fulcrum_sdk import PluginContext
from fulcrum_sdk.data import Accounts, Holdings, RiskProfile
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
    return _glance_of(
        data.holdings(),
        data.accounts() if data.allows("accounts:read") else None,
        data.risk() if data.allows("profile:risk") else None,
        local_date(ctx.now),
    )


_Inputs = tuple[Holdings | None, Accounts | None, RiskProfile | None, date]

_GLANCES: dict[tuple[int, int, int, date], tuple[_Inputs, Glance | None]] = {}
"""Glances by the identity of the records they were scored from (and the day): the host hands a
plugin the same record objects while it holds them, so a customer's next page is not scored again.
The records are frozen, and each entry keeps its own, so an id is never mistaken for a later object's."""

_GLANCES_HELD: Final = 4096
_GLANCES_LOCK = threading.Lock()


def _glance_of(
    holdings: Holdings | None, accounts: Accounts | None, risk: RiskProfile | None, today: date
) -> Glance | None:
    """:func:`glance` of these records, scored once while the host hands out the same objects."""
    key = (id(holdings), id(accounts), id(risk), today)
    held = _GLANCES.get(key)
    if held is not None:
        (h, a, r, _), seen = held
        if h is holdings and a is accounts and r is risk:
            return seen
    seen = glance(holdings=holdings, accounts=accounts, risk=risk, today=today)
    with _GLANCES_LOCK:
        if len(_GLANCES) >= _GLANCES_HELD:
            del _GLANCES[next(iter(_GLANCES))]  # the oldest: a bounded memo, not a store
        _GLANCES[key] = ((holdings, accounts, risk, today), seen)
    return seen


def assess(ctx: PluginContext) -> CheckUp | None:
    """The customer's full check-up, every part explained, or ``None`` as for :func:`glance_at`."""
    seen = glance_at(ctx)
    return None if seen is None else seen.report()
