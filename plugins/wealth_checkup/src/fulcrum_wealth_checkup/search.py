"""Search hits: the check-up itself, allocation advice, listed products and articles."""

from __future__ import annotations

from fulcrum_sdk import Action, LocalizedText, PluginContext, SearchHit, hookimpl
from fulcrum_sdk.matching import relevance

from fulcrum_wealth_checkup._report import glance_at
from fulcrum_wealth_checkup._shelf import on_shelf
from fulcrum_wealth_checkup.content import ARTICLES
from fulcrum_wealth_checkup.home import REPORT_URI

__all__ = ["search"]

_CHECKUP_TERMS = ("财富体检", "体检", "健康分", "wealth check-up", "check-up", "checkup")
_ALLOCATION_TERMS = ("资产配置", "配置", "再平衡", "调仓", "allocation", "rebalance")


def _checkup_hit(ctx: PluginContext, score: float) -> SearchHit:
    report = glance_at(ctx)  # only the score is shown
    if report is not None:
        subtitle = LocalizedText(
            zh_CN=f"您当前的健康分：{report.score} 分", en=f"Your current score: {report.score}"
        )
    else:
        subtitle = LocalizedText(
            zh_CN="五项指标评估您的财务健康", en="Five measures of your financial health"
        )
    return SearchHit(
        key="wealth-checkup",
        kind="function",
        title=LocalizedText(zh_CN="财富体检", en="Wealth check-up"),
        subtitle=subtitle,
        action=Action(uri=REPORT_URI),
        relevance=score,
    )


def _allocation_hit(score: float) -> SearchHit:
    return SearchHit(
        key="wealth-allocation",
        kind="function",
        title=LocalizedText(zh_CN="资产配置建议", en="Allocation advice"),
        subtitle=LocalizedText(
            zh_CN="对照目标配置，看看该增配哪一类", en="What to add to reach your target mix"
        ),
        action=Action(uri=f"{REPORT_URI}?part=allocation"),
        relevance=score,
    )


def _product_hits(ctx: PluginContext, query: str) -> list[SearchHit]:
    scored = ((p, relevance(query, (p.name.zh_CN, p.name.en or "", p.id))) for p in on_shelf(ctx))
    return [
        SearchHit(
            key=f"product-{p.id}",
            kind="product",
            title=p.name,
            subtitle=p.pitch,
            action=Action(uri=p.uri),
            relevance=score,
        )
        for p, score in scored
        if score
    ]


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
    """Hits whose names or terms match ``query``; products only from the customer's suitable shelf."""
    hits: list[SearchHit] = []
    if score := relevance(query, _CHECKUP_TERMS):
        hits.append(_checkup_hit(ctx, score))
    if score := relevance(query, _ALLOCATION_TERMS):
        hits.append(_allocation_hit(score))
    return hits + _product_hits(ctx, query) + _article_hits(query)
