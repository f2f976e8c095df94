"""Search hits for pension functions and services, with the customer's figures when granted."""

from __future__ import annotations

from fulcrum_sdk import Action, LocalizedText, PluginContext, SearchHit, hookimpl
from fulcrum_sdk.matching import relevance
from fulcrum_sdk.money import yuan

from fulcrum_pension._accounts import Snapshot, snapshot
from fulcrum_pension.content import ARTICLES
from fulcrum_pension.home import CONTRIBUTE_URI, OVERVIEW_URI

__all__ = ["search"]

_PERSONAL = ("个人养老金", "养老金缴存", "缴存", "个税抵扣", "personal pension")
_SOCIAL = ("社保", "养老保险", "social security")
_HOUSING = ("公积金", "住房公积金", "housing fund")
_PLANNING = ("养老", "退休", "养老规划", "retirement", "pension")


def _personal_subtitle(snap: Snapshot | None) -> LocalizedText:
    if snap is not None and snap.room is not None:
        return LocalizedText(
            zh_CN=f"今年还可缴存 {yuan(snap.room.left_fen)}（上限 ¥12,000.00）",
            en=f"{yuan(snap.room.left_fen)} left of this year's ¥12,000.00",
        )
    return LocalizedText(
        zh_CN="每年最高缴存 ¥12,000.00，可抵扣个税", en="Up to ¥12,000.00 a year, tax-deductible"
    )


def _article_hits(query: str) -> list[SearchHit]:
    scored = ((a, relevance(query, (a.title.zh_CN, a.title.en or "", *a.tags))) for a in ARTICLES)
    return [
        SearchHit(
            key=f"article-{a.slug}",
            kind="article",
            title=a.title,
            subtitle=a.summary,
            action=Action(uri=a.uri),
            relevance=score,
        )
        for a, score in scored
        if score
    ]


@hookimpl
async def search(ctx: PluginContext, query: str) -> list[SearchHit]:
    """Hits for contributions, social security, housing fund, planning and articles."""
    hits: list[SearchHit] = []
    snap: Snapshot | None = None
    if score := relevance(query, _PERSONAL):
        snap = await snapshot(ctx)
        hits.append(
            SearchHit(
                key="pension-contribute",
                kind="function",
                title=LocalizedText(zh_CN="个人养老金缴存", en="Personal pension contribution"),
                subtitle=_personal_subtitle(snap),
                action=Action(uri=CONTRIBUTE_URI),
                relevance=score,
            )
        )
    if score := relevance(query, _SOCIAL):
        hits.append(
            SearchHit(
                key="pension-social-security",
                kind="service",
                title=LocalizedText(zh_CN="社保账户查询", en="Social security account"),
                action=Action(uri="fulcrum://pension/social-security"),
                relevance=score,
            )
        )
    if score := relevance(query, _HOUSING):
        hits.append(
            SearchHit(
                key="pension-housing-fund",
                kind="service",
                title=LocalizedText(zh_CN="公积金账户查询", en="Housing fund account"),
                action=Action(uri="fulcrum://pension/housing-fund"),
                relevance=score,
            )
        )
    if score := relevance(query, _PLANNING):
        hits.append(
            SearchHit(
                key="pension-planning",
                kind="function",
                title=LocalizedText(zh_CN="养老规划", en="Retirement planning"),
                subtitle=LocalizedText(
                    zh_CN="账户概览与退休收入测算", en="Accounts and a retirement projection"
                ),
                action=Action(uri=OVERVIEW_URI),
                relevance=score,
            )
        )
    return hits + _article_hits(query)
