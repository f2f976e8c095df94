"""Investor-education articles, each tied to the check-up part it helps with."""

from __future__ import annotations

from datetime import datetime

import msgspec
from fulcrum_sdk import LocalizedText as T
from fulcrum_sdk.localtime import CHINA_TZ

from fulcrum_wealth_checkup.scoring import PartKey

__all__ = ["ARTICLES", "Article"]


class Article(msgspec.Struct, frozen=True, kw_only=True):
    """An article in the investor-education column."""

    slug: str
    part: PartKey
    title: T
    summary: T
    published_at: datetime
    tags: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        """The app deep link that opens the article."""
        return f"fulcrum://wealth-checkup/articles/{self.slug}"


def _a(
    slug: str,
    part: PartKey,
    day: tuple[int, int, int],
    title: tuple[str, str],
    summary: tuple[str, str],
    *tags: str,
) -> Article:
    return Article(
        slug=slug,
        part=part,
        title=T(zh_CN=title[0], en=title[1]),
        summary=T(zh_CN=summary[0], en=summary[1]),
        published_at=datetime(*day, 9, 0, tzinfo=CHINA_TZ),
        tags=tags,
    )


ARTICLES: tuple[Article, ...] = (
    _a(
        "household-quadrant",
        "allocation",
        (2026, 3, 2),
        (
            "家庭资产四笔钱：活钱、保障、生钱、保值怎么分",
            "Four pots of household money and how to split them",
        ),
        (
            "从10%、20%、30%、40%的经典配置出发，按风险承受能力调整。",
            "Start from the classic 10/20/30/40 split and shift it by your risk tolerance.",
        ),
        "资产配置",
        "配置",
        "allocation",
    ),
    _a(
        "diversify",
        "concentration",
        (2026, 4, 15),
        ("不要把鸡蛋放在一个篮子里：分散投资入门", "Don't put all your eggs in one basket"),
        (
            "单一产品或发行机构占比过高时，如何一步步分散。",
            "How to spread money held in one product or issuer.",
        ),
        "分散",
        "集中",
        "diversification",
    ),
    _a(
        "emergency-fund",
        "liquidity",
        (2026, 5, 8),
        ("应急资金留多少？3–6个月支出是底线", "How big should your emergency fund be?"),
        (
            "失业、疾病等意外时，能随时取用的钱要够3–6个月生活。",
            "Keep three to six months of spending where you can reach it at once.",
        ),
        "应急",
        "活钱",
        "emergency",
    ),
    _a(
        "risk-levels",
        "suitability",
        (2026, 6, 20),
        ("读懂R1–R5与C1–C5：为什么有的产品买不了", "R1–R5 and C1–C5: why some products are off limits"),
        (
            "产品风险等级不能高于您的风险承受能力，测评过期需重新评估。",
            "A product's risk may not exceed your tolerance; an expired assessment must be retaken.",
        ),
        "风险测评",
        "适当性",
        "risk",
    ),
    _a(
        "idle-money",
        "idle_cash",
        (2026, 7, 12),
        ("活期里的闲钱，如何让它动起来", "Putting idle current-account money to work"),
        (
            "超出半年支出的活期存款，可按目标配置转入稳健产品。",
            "Demand deposits beyond six months of spending can follow your target mix.",
        ),
        "闲置",
        "活期",
        "idle cash",
    ),
)
