"""Retirement-planning articles, some of them aimed at a customer segment."""

from __future__ import annotations

from datetime import datetime

import msgspec
from fulcrum_sdk import LocalizedText as T
from fulcrum_sdk.localtime import CHINA_TZ

__all__ = ["ARTICLES", "Article"]


class Article(msgspec.Struct, frozen=True, kw_only=True):
    """A retirement-planning article; ``segments`` it suits best (empty: everyone)."""

    slug: str
    title: T
    summary: T
    published_at: datetime
    segments: frozenset[str] = frozenset()
    tags: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        """The app deep link that opens the article."""
        return f"fulcrum://pension/articles/{self.slug}"


def _a(
    slug: str,
    day: tuple[int, int, int],
    title: tuple[str, str],
    summary: tuple[str, str],
    segments: frozenset[str] = frozenset(),
    *tags: str,
) -> Article:
    return Article(
        slug=slug,
        title=T(zh_CN=title[0], en=title[1]),
        summary=T(zh_CN=summary[0], en=summary[1]),
        published_at=datetime(*day, 9, 0, tzinfo=CHINA_TZ),
        segments=segments,
        tags=tags,
    )


ARTICLES: tuple[Article, ...] = (
    _a(
        "three-pillars",
        (2026, 2, 10),
        ("养老三支柱：社保、企业年金与个人养老金", "The three pillars of retirement income"),
        (
            "基本养老保险保基本，个人养老金补充，提前规划更从容。",
            "Social security covers the basics; a personal pension tops it up. Start early.",
        ),
        frozenset(),
        "养老",
        "三支柱",
        "retirement",
    ),
    _a(
        "personal-pension-tax",
        (2026, 9, 1),
        (
            "个人养老金怎么缴最划算：每年12,000元的个税抵扣",
            "Personal pension: the 12,000 CNY yearly tax deduction",
        ),
        (
            "缴存额可在个税前扣除，收入越高、节税越多；领取时按3%缴税。",
            "Contributions reduce taxable income; the higher your bracket, the more you save. "
            "Withdrawals are taxed at 3%.",
        ),
        frozenset({"affluent"}),
        "个人养老金",
        "个税",
        "tax",
    ),
    _a(
        "contribution-years",
        (2026, 5, 18),
        ("社保缴费年限如何影响养老金", "How contribution years shape your pension"),
        (
            "每多缴一年，基础养老金约增加缴费基数的1%。",
            "Each extra year adds about 1% of the contribution base to the basic pension.",
        ),
        frozenset({"mass"}),
        "社保",
        "缴费年限",
        "social security",
    ),
    _a(
        "housing-fund-withdrawal",
        (2026, 6, 30),
        ("退休时公积金怎么提取", "Withdrawing your housing fund at retirement"),
        (
            "退休后可一次性提取住房公积金账户余额。",
            "At retirement the housing fund balance can be withdrawn in full.",
        ),
        frozenset(),
        "公积金",
        "housing fund",
    ),
)
