"""The ``retirement`` column: the customer's accounts, a projection with its assumptions, articles.

Articles are ordered for the customer's segment only when ``profile:basic`` is granted; without
it every customer sees the same, generic order.
"""

from __future__ import annotations

from fulcrum_sdk import Action, FeedItem, LocalizedText, PluginContext, hookimpl
from fulcrum_sdk.localtime import local_date
from fulcrum_sdk.money import yuan

from fulcrum_pension._accounts import Snapshot, snapshot
from fulcrum_pension.content import ARTICLES
from fulcrum_pension.home import OVERVIEW_URI
from fulcrum_pension.projection import project

__all__ = ["feed_items"]


def _overview(snap: Snapshot) -> LocalizedText:
    p = snap.pension
    zh, en = [], []
    if p.social_security:
        zh.append(f"社保个人账户 {yuan(p.social_security.balance_fen)}")
        en.append(f"social security {yuan(p.social_security.balance_fen)}")
    if p.housing_fund:
        zh.append(f"公积金 {yuan(p.housing_fund.balance_fen)}")
        en.append(f"housing fund {yuan(p.housing_fund.balance_fen)}")
    if p.personal_pension and p.personal_pension.opened and snap.room is not None:
        # Contributions made here count in this year's total at once; the bank's balance shows them once
        # it books them, so until then they are added to it (never twice: see cap.Room.unbooked_fen).
        balance = yuan(p.personal_pension.balance_fen + snap.room.unbooked_fen)
        zh.append(f"个人养老金 {balance}（今年已缴 {yuan(snap.room.used_fen)}）")
        en.append(f"personal pension {balance} ({yuan(snap.room.used_fen)} this year)")
    else:
        zh.append("尚未开立个人养老金账户")
        en.append("no personal pension account yet")
    text_en = "; ".join(en)
    return LocalizedText(zh_CN="；".join(zh), en=text_en[:1].upper() + text_en[1:])


def _account_cards(ctx: PluginContext, snap: Snapshot) -> list[FeedItem]:
    cards = [
        FeedItem(
            key="pension-overview",
            column="retirement",
            kind="article",
            title=LocalizedText(zh_CN="我的养老账户", en="My pension accounts"),
            summary=_overview(snap),
            action=Action(uri=OVERVIEW_URI),
            published_at=ctx.now,
            priority=600,
        )
    ]
    contribution = snap.room.used_fen if snap.room is not None else 0
    projection = project(snap.pension, year=local_date(ctx.now).year, personal_contribution_fen=contribution)
    if projection is not None:
        total = yuan(projection.monthly_total_fen)
        cards.append(
            FeedItem(
                key="pension-projection",
                column="retirement",
                kind="article",
                title=LocalizedText(
                    zh_CN=f"预计{projection.retirement_year}年退休后每月约 {total}",
                    en=f"About {total} a month after retiring in {projection.retirement_year}",
                ),
                summary=projection.assumptions,
                action=Action(uri=f"{OVERVIEW_URI}?view=projection"),
                published_at=ctx.now,
                priority=500,
            )
        )
    return cards


@hookimpl
async def feed_items(ctx: PluginContext, column: str) -> list[FeedItem] | None:
    """Cards for ``retirement``; ``None`` for other columns."""
    if column != "retirement":
        return None
    snap = await snapshot(ctx)
    items = _account_cards(ctx, snap) if snap is not None else []
    profile = ctx.data.profile() if ctx.data.allows("profile:basic") else None
    segment = profile.segment if profile is not None else None
    items.extend(
        FeedItem(
            key=f"article-{a.slug}",
            column="retirement",
            kind="article",
            title=a.title,
            summary=a.summary,
            action=Action(uri=a.uri),
            published_at=a.published_at,
            priority=300 if segment is not None and segment in a.segments else 100,
        )
        for a in ARTICLES
    )
    return items
