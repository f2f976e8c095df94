"""Home-page offers: a kingkong entry, a banner with the score, and a popup only when it matters.

The popup appears when the score dropped since the customer's last visit or a product above their
risk tolerance appeared. What was last seen is kept in the plugin's storage, never in memory; the
host may answer that read from its cache (up to a second old), so two visits within that second in
two workers can both show the same popup, which is harmless, and this worker always sees its own write.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import msgspec
from fulcrum_sdk import Action, LocalizedText, PluginContext, SlotOffer, hookimpl

from fulcrum_wealth_checkup._report import glance_at
from fulcrum_wealth_checkup.scoring import PART_TITLES, CheckUp, Glance, PartKey

__all__ = ["REPORT_URI", "Seen", "home_slot_offers", "notable_change"]

REPORT_URI = "fulcrum://wealth-checkup/report"

Change = Literal["dropped", "mismatch"]


class Seen(msgspec.Struct, frozen=True):
    """What the customer was last shown, as kept in storage."""

    score: int
    mismatched: tuple[str, ...] = ()


def _memory_key(ctx: PluginContext) -> str:
    return f"last-checkup:{ctx.customer.id}"


def _recall(raw: Any) -> Seen | None:
    """The remembered state read from storage; ``None`` when there is none or it is not a valid
    ``Seen`` (replaced then)."""
    if raw is None:
        return None
    try:  # to Seen, not Seen | None: msgspec re-plans a union on every call, ten times the cost
        return msgspec.convert(raw, Seen)
    except msgspec.ValidationError:
        return None


async def notable_change(ctx: PluginContext, report: CheckUp | Glance) -> tuple[Change | None, int | None]:
    """Compare with what the customer saw last time, remember the new state, and say what changed.

    Returns the change (``None`` when nothing worth a popup) and the previous score. A mismatch on
    the first visit counts as new: the customer has not been told about it before.
    """
    raw = await ctx.storage.aget(_memory_key(ctx))
    shown = sorted(report.mismatched)
    if raw == {"score": report.score, "mismatched": shown} and type(raw["score"]) is int:
        # The common case, nothing new and nothing lower: the stored JSON is exactly what would be
        # stored now, so it is that Seen without converting it (a float or bool score equals an
        # int but is not a valid Seen, so it goes the long way and is replaced).
        return None, report.score
    before = _recall(raw)
    now = Seen(score=report.score, mismatched=tuple(shown))
    if before == now:
        return None, now.score  # stored in another shape, an unknown field or a left-out default
    await ctx.storage.aput(_memory_key(ctx), msgspec.to_builtins(now))
    if before is None:
        return ("mismatch" if now.mismatched else None), None
    if set(now.mismatched) - set(before.mismatched):
        return "mismatch", before.score
    if report.score < before.score:
        return "dropped", before.score
    return None, before.score


_KINGKONG = SlotOffer(
    slot="home.kingkong/v1",
    key="wealth-checkup-entry",
    title=LocalizedText(zh_CN="财富体检", en="Wealth check-up"),
    action=Action(uri=REPORT_URI),
    priority=300,
)
_INVITATION = SlotOffer(
    slot="home.banner/v1",
    key="wealth-checkup-banner",
    title=LocalizedText(zh_CN="免费做一次财富体检", en="Get a free wealth check-up"),
    subtitle=LocalizedText(zh_CN="看看您的资产配置是否合理", en="See whether your money is well allocated"),
    action=Action(uri=REPORT_URI),
    priority=100,
)
_REPORT_TITLE = LocalizedText(zh_CN="查看您的财富体检报告", en="See your wealth check-up report")
_REPORT_ACTION = Action(uri=REPORT_URI)
_MISMATCH_TITLE = LocalizedText(
    zh_CN="发现持仓超出您的风险承受能力", en="A holding is above your risk tolerance"
)
# The offers above never vary, and SlotOffer is frozen, so every request shares them.


def _banner(report: Glance | None) -> SlotOffer:
    return _INVITATION if report is None else _score_banner(report.score, report.weakest)


@functools.lru_cache(maxsize=len(PART_TITLES) * 101)
def _score_banner(score: int, weakest_part: PartKey) -> SlotOffer:
    """The banner of a score and its weakest part: one shared offer per pair (there are at most 505),
    so a page neither formats it again nor has the host check a new object."""
    weakest = PART_TITLES[weakest_part]
    return SlotOffer(
        slot="home.banner/v1",
        key="wealth-checkup-banner",
        title=_REPORT_TITLE,
        subtitle=LocalizedText(
            zh_CN=f"健康分 {score} 分 · 最需关注：{weakest.zh_CN}",
            en=f"Score {score} · Needs attention: {weakest.en}",
        ),
        action=_REPORT_ACTION,
        priority=200 + (100 - score) * 3,  # the weaker the score, the stronger the claim on the carousel
    )


def _popup(report: Glance, change: Change, previous: int | None) -> SlotOffer:
    if change == "mismatch":
        part = report.part("suitability")
        title = _MISMATCH_TITLE
    else:
        part = report.part(report.weakest)
        title = LocalizedText(
            zh_CN=f"您的财富健康分从 {previous} 分降至 {report.score} 分",
            en=f"Your wealth score fell from {previous} to {report.score}",
        )
    return SlotOffer(
        slot="home.popup/v1",
        key=f"wealth-checkup-{change}",
        title=title,
        subtitle=part.finding,
        action=Action(uri=f"{REPORT_URI}?part={part.key}"),
        priority=900,
    )


@hookimpl
async def home_slot_offers(ctx: PluginContext) -> list[SlotOffer]:
    """The entry, the score banner and, when something got worse, one popup.

    Only the score is computed; the one part's text a popup shows is rendered only for a popup.
    """
    report = glance_at(ctx)
    offers: list[SlotOffer] = []
    if ctx.has_scope("slot:home.kingkong"):
        offers.append(_KINGKONG)
    if ctx.has_scope("slot:home.banner"):
        offers.append(_banner(report))
    if report is not None:
        change, previous = await notable_change(ctx, report)
        if change is not None and ctx.has_scope("slot:home.popup"):
            offers.append(_popup(report, change, previous))
    return offers
