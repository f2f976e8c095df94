"""Home-page offers: the pension entry in the icon grid, and a year-end notice about cap room.

From 1 November a customer with an open personal pension account and room left under this year's
cap sees a notice: contributions made by 31 December reduce this year's taxable income.
"""

from __future__ import annotations

from datetime import datetime, time

from fulcrum_sdk import Action, LocalizedText, PluginContext, SlotOffer, hookimpl
from fulcrum_sdk.localtime import CHINA_TZ, local_date
from fulcrum_sdk.money import yuan

from fulcrum_pension._accounts import snapshot

__all__ = ["CONTRIBUTE_URI", "NOTICE_FROM_MONTH", "OVERVIEW_URI", "home_slot_offers"]

OVERVIEW_URI = "fulcrum://pension/overview"
CONTRIBUTE_URI = "fulcrum://pension/personal/contribute"
NOTICE_FROM_MONTH = 11
"""The year-end reminder runs from 1 November to 31 December, China time."""


@hookimpl
async def home_slot_offers(ctx: PluginContext) -> list[SlotOffer]:
    """The kingkong entry always; the notice only near year end with room left."""
    snap = await snapshot(ctx)
    offers: list[SlotOffer] = []
    if ctx.has_scope("slot:home.kingkong"):
        subtitle = None
        if snap is not None and snap.room is not None and snap.room.left_fen:
            subtitle = LocalizedText(
                zh_CN=f"今年还可缴 {yuan(snap.room.left_fen)}",
                en=f"{yuan(snap.room.left_fen)} left this year",
            )
        offers.append(
            SlotOffer(
                slot="home.kingkong/v1",
                key="pension-entry",
                title=LocalizedText(zh_CN="养老", en="Pension"),
                subtitle=subtitle,
                action=Action(uri=OVERVIEW_URI),
                priority=250,
            )
        )
    today = local_date(ctx.now)
    if (
        ctx.has_scope("slot:home.notice")
        and today.month >= NOTICE_FROM_MONTH
        and snap is not None
        and snap.room is not None
        and snap.room.left_fen > 0
    ):
        left = yuan(snap.room.left_fen)
        offers.append(
            SlotOffer(
                slot="home.notice/v1",
                key=f"pension-year-end-{today.year}",
                title=LocalizedText(
                    zh_CN=f"个人养老金今年还可缴存 {left}，12月31日前缴存可抵扣本年度个税",
                    en=f"{left} of personal pension room left this year; "
                    "contribute by 31 December to cut this year's tax",
                ),
                action=Action(uri=CONTRIBUTE_URI),
                priority=600,
                valid_until=datetime.combine(
                    today.replace(month=12, day=31), time(23, 59, 59), tzinfo=CHINA_TZ
                ),
            )
        )
    return offers
