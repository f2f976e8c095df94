"""Home-page offers: a kingkong entry, a banner with the score, and a popup only when it matters.

The popup appears when the score dropped since the customer's last visit or a product above their
risk tolerance appeared. The host may leave an offered popup unshown (its frequency cap, another
plugin's popup), so such a change is kept as a notice and offered on every page until the customer
opens the report (``report_opened``, from the page hook) or it is ``NOTICE_DAYS`` old; the host's cap
keeps it to once a day. What was last seen is kept in the plugin's storage, never in memory, and written
only when it changes; the host may answer that read from its cache (up to a second old), so two visits
within that second in two workers can both find the same change, which is harmless, and this worker
always sees its own write.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any, Literal

import msgspec
from fulcrum_sdk import Action, LocalizedText, PluginContext, SlotOffer, StorageError, hookimpl

from fulcrum_wealth_checkup._report import glance_at
from fulcrum_wealth_checkup.scoring import PART_TITLES, CheckUp, Glance, PartKey

__all__ = [
    "NOTICE_DAYS", "REPORT_URI", "Notice", "Seen", "home_slot_offers", "notable_change", "report_opened",
]

REPORT_URI = "fulcrum://wealth-checkup/report"
NOTICE_DAYS = 7
"""How long a change is offered as a popup while the customer does not open the report: after a week
it is old news (the banner shows the score all along), and the popup slot goes to others."""
_NOTICE_SECONDS = int(timedelta(days=NOTICE_DAYS).total_seconds())

Change = Literal["dropped", "mismatch"]


class Notice(msgspec.Struct, frozen=True):
    """A change the customer has not seen: ``previous`` is the score they knew before it (``None`` on a
    first visit), ``since`` when it was found (Unix seconds)."""

    change: Change
    previous: int | None
    since: int


class Seen(msgspec.Struct, frozen=True):
    """The score and mismatches of the last visit, and the notice still owed, as kept in storage."""

    score: int
    mismatched: tuple[str, ...] = ()
    notice: Notice | None = None


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


def _stored(seen: Seen) -> dict[str, Any]:
    """``seen`` as stored: without a notice it is the plain ``{"score", "mismatched"}`` the home page's
    fast path compares with."""
    kept = {"score": seen.score, "mismatched": list(seen.mismatched)}
    return kept if seen.notice is None else {**kept, "notice": msgspec.to_builtins(seen.notice)}


def _after(before: Seen | None, now: Seen, at: int) -> Seen:
    """The state to keep after a visit finding ``now`` at ``at`` (Unix seconds), with the notice owed.

    A new mismatch, or a score below the one the customer last knew, is a notice; one still owed stays
    while it holds (a mismatch while any is held, a drop while the score is below the one known) until
    it is ``NOTICE_DAYS`` old, counted again when things get worse. A mismatch outranks a drop.
    """
    if before is None:
        return msgspec.structs.replace(now, notice=Notice("mismatch", None, at)) if now.mismatched else now
    owed = before.notice if before.notice is not None and at - before.notice.since < _NOTICE_SECONDS else None
    known = owed.previous if owed is not None else before.score
    new_mismatch = not set(now.mismatched) <= set(before.mismatched)
    change: Change
    if new_mismatch or (owed is not None and owed.change == "mismatch" and now.mismatched):
        change = "mismatch"
    elif known is not None and now.score < known:
        change = "dropped"
    else:
        return now
    worse = new_mismatch or now.score < before.score
    since = owed.since if owed is not None and owed.change == change and not worse else at
    return msgspec.structs.replace(now, notice=Notice(change, known, since))


async def notable_change(ctx: PluginContext, report: CheckUp | Glance) -> Notice | None:
    """Compare with the customer's last visit, remember the new state, and say what they are owed.

    Returns the notice worth a popup, new or still owed, or ``None``. A mismatch on the first visit
    counts as new: the customer has not been told about it before.
    """
    raw = await ctx.storage.aget(_memory_key(ctx))
    shown = sorted(report.mismatched)
    if raw == {"score": report.score, "mismatched": shown} and type(raw["score"]) is int:
        # The common case, nothing new, nothing lower and nothing owed: the stored JSON is exactly what
        # would be stored now, so it is that Seen without converting it (a float or bool score equals
        # an int but is not a valid Seen, so it goes the long way and is replaced).
        return None
    before = _recall(raw)
    after = _after(before, Seen(score=report.score, mismatched=tuple(shown)), int(ctx.now.timestamp()))
    if after != before:  # else stored in another shape, an unknown field or a left-out default
        await ctx.storage.aput(_memory_key(ctx), _stored(after))
    return after.notice


async def report_opened(ctx: PluginContext, report: CheckUp) -> None:
    """The customer opened the report, so ``report`` is now what they know: a notice owed is seen, and a
    change the home page has not scored yet (a first visit, a drop, a new mismatch read here first) is
    not news on the next page. Writes only when what is kept differs from that, so opening the report
    again costs one read; storage failing leaves things as they were (a notice stays owed) rather than
    failing the report."""
    seen = _stored(Seen(score=report.score, mismatched=tuple(sorted(report.mismatched))))
    try:
        if await ctx.storage.aget(_memory_key(ctx)) != seen:
            await ctx.storage.aput(_memory_key(ctx), seen)
    except StorageError:
        return


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


def _popup(report: Glance, notice: Notice) -> SlotOffer:
    part = report.part("suitability" if notice.change == "mismatch" else report.weakest)
    return _popup_offer(notice.change, notice.previous, report.score, part.key, part.finding)


@functools.lru_cache(maxsize=1024)
def _popup_offer(
    change: Change, previous: int | None, score: int, part_key: str, finding: LocalizedText
) -> SlotOffer:
    """The popup of a notice: one shared offer per notice and finding, since an owed notice is offered
    on every page until it is seen, so a page neither formats it again nor has the host check a new
    object."""
    if change == "mismatch":
        title = _MISMATCH_TITLE
    else:
        title = LocalizedText(
            zh_CN=f"您的财富健康分从 {previous} 分降至 {score} 分",
            en=f"Your wealth score fell from {previous} to {score}",
        )
    return SlotOffer(
        slot="home.popup/v1",
        key=f"wealth-checkup-{change}",
        title=title,
        subtitle=finding,
        action=Action(uri=f"{REPORT_URI}?part={part_key}"),
        priority=900,
    )


@hookimpl
async def home_slot_offers(ctx: PluginContext) -> list[SlotOffer]:
    """The entry, the score banner and, while the customer is owed news of something worse, one popup.

    Only the score is computed; the one part's text a popup shows is rendered only for a popup.
    """
    report = glance_at(ctx)
    offers: list[SlotOffer] = []
    if ctx.has_scope("slot:home.kingkong"):
        offers.append(_KINGKONG)
    if ctx.has_scope("slot:home.banner"):
        offers.append(_banner(report))
    if report is not None:
        notice = await notable_change(ctx, report)
        if notice is not None and ctx.has_scope("slot:home.popup"):
            offers.append(_popup(report, notice))
    return offers
