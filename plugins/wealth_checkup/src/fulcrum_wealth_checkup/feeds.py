"""Feed cards: the score and suitable products for the missing asset class (``wealth``), and
investor-education articles led by the one for the customer's weakest part (``education``)."""

from __future__ import annotations

from fulcrum_sdk import Action, FeedItem, LocalizedText, PluginContext, hookimpl

from fulcrum_wealth_checkup._report import glance_at
from fulcrum_wealth_checkup._shelf import on_shelf
from fulcrum_wealth_checkup.content import ARTICLES
from fulcrum_wealth_checkup.home import REPORT_URI
from fulcrum_wealth_checkup.scoring import Glance

__all__ = ["feed_items"]


def _score_card(ctx: PluginContext, report: Glance) -> FeedItem:
    return FeedItem(
        key="wealth-checkup-score",
        column="wealth",
        kind="article",
        title=LocalizedText(
            zh_CN=f"您的财富健康分：{report.score} 分", en=f"Your wealth score: {report.score}"
        ),
        summary=report.part(report.weakest).recommendation,
        action=Action(uri=REPORT_URI),
        published_at=ctx.now,
        priority=500,
    )


def _wealth(ctx: PluginContext, report: Glance | None) -> list[FeedItem]:
    """The score card, then suitable products; those filling the largest shortfall rank first."""
    wanted = report.shortfall() if report is not None else None
    products = [
        FeedItem(
            key=f"product-{p.id}",
            column="wealth",
            kind="product",
            title=p.name,
            summary=p.pitch,
            action=Action(uri=p.uri),
            published_at=ctx.now,
            priority=300 if p.asset_class == wanted else 100,
        )
        for p in on_shelf(ctx)
    ]
    return ([_score_card(ctx, report)] if report is not None else []) + products


def _education(report: Glance | None) -> list[FeedItem]:
    weakest = report.weakest if report else None
    return [
        FeedItem(
            key=f"article-{a.slug}",
            column="education",
            kind="article",
            title=a.title,
            summary=a.summary,
            action=Action(uri=a.uri),
            published_at=a.published_at,
            priority=400 if a.part == weakest else 100,
        )
        for a in ARTICLES
    ]


@hookimpl
async def feed_items(ctx: PluginContext, column: str) -> list[FeedItem] | None:
    """Cards for ``wealth`` and ``education``; ``None`` for any other column."""
    if column == "wealth":
        return _wealth(ctx, glance_at(ctx))
    if column == "education":
        return _education(glance_at(ctx))
    return None
