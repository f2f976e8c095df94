"""Home-page offers: the pension entry in the icon grid, and a year-end notice about cap room.

From 1 November a customer with an open personal pension account and room left under this year's
cap sees a notice: contributions made by 31 December reduce this year's taxable income.
"""

from __future__ import annotations

import functools
from datetime import datetime

from fulcrum_sdk import Action, LocalizedText, PluginContext, SlotOffer, hookimpl
from fulcrum_sdk.localtime import CHINA_TZ, local_date
from fulcrum_sdk.money import yuan

from fulcrum_pension.cap import aroom

__all__ = ["CONTRIBUTE_URI", "NOTICE_FROM_MONTH", "OVERVIEW_URI", "home_slot_offers"]

OVERVIEW_URI = "fulcrum://pension/overview"
CONTRIBUTE_URI = "fulcrum://pension/personal/contribute"
NOTICE_FROM_MONTH = 11
"""The year-end reminder runs from 1 November to 31 December, China time."""

_ENTRY_TITLE = LocalizedText(zh_CN="养老", en="Pension")
_OVERVIEW = Action(uri=OVERVIEW_URI)
_CONTRIBUTE = Action(uri=CONTRIBUTE_URI)
_PLAIN_ENTRY = SlotOffer(
    slot="home.kingkong/v1", key="pension-entry", title=_ENTRY_TITLE, action=_OVERVIEW, priority=250
)
# Frozen and never varying, so every request shares them.

_SHARED = 4096
"""Offers kept per amount of room left: a page with an amount seen before reuses its offer (neither
formatted again nor checked again by the host, which answers an offer it has seen by identity)."""


@functools.lru_cache(maxsize=4)
def _year_end(year: int) -> datetime:
    """Midnight starting 1 January after ``year``, China time: when the notice expires (the host's
    ``valid_until`` is exclusive, and a contribution made at 23:59:59.5 on 31 December still counts)."""
    return datetime(year + 1, 1, 1, tzinfo=CHINA_TZ)


@functools.lru_cache(maxsize=_SHARED)
def _entry(left_fen: int) -> SlotOffer:
    """The grid entry mentioning ``left_fen`` of room this year."""
    left = yuan(left_fen)
    return SlotOffer(
        slot="home.kingkong/v1",
        key="pension-entry",
        title=_ENTRY_TITLE,
        subtitle=LocalizedText(zh_CN=f"今年还可缴 {left}", en=f"{left} left this year"),
        action=_OVERVIEW,
        priority=250,
    )


@functools.lru_cache(maxsize=_SHARED)
def _notice(left_fen: int, year: int) -> SlotOffer:
    """The year-end notice of ``year`` about ``left_fen`` of room."""
    left = yuan(left_fen)
    return SlotOffer(
        slot="home.notice/v1",
        key=f"pension-year-end-{year}",
        title=LocalizedText(
            zh_CN=f"个人养老金今年还可缴存 {left}，12月31日前缴存可抵扣本年度个税",
            en=f"{left} of personal pension room left this year; "
            "contribute by 31 December to cut this year's tax",
        ),
        action=_CONTRIBUTE,
        priority=600,
        valid_until=_year_end(year),
    )


@hookimpl
async def home_slot_offers(ctx: PluginContext) -> list[SlotOffer]:
    """The kingkong entry always; the notice only near year end with room left.

    Offers for one amount of room are shared across pages, and the calendar is read once, only for a
    customer with an open personal pension (the counters' year and the notice's month).
    """
    left_fen, today = 0, None
    if ctx.data.allows("pension:read"):
        pension = ctx.data.pension()
        pp = pension.personal_pension if pension is not None else None
        if pp is not None and pp.opened:
            today = local_date(ctx.now)
            left_fen = (await aroom(ctx, pp, year=today.year)).left_fen
    offers: list[SlotOffer] = []
    if ctx.has_scope("slot:home.kingkong"):
        offers.append(_entry(left_fen) if left_fen else _PLAIN_ENTRY)
    if (
        left_fen > 0  # so today was read
        and today is not None
        and today.month >= NOTICE_FROM_MONTH
        and ctx.has_scope("slot:home.notice")
    ):
        offers.append(_notice(left_fen, today.year))
    return offers
