"""The ``overview`` page (``fulcrum://pension/overview``): each account line by line, this year's room
under the personal pension cap, and the retirement projection with the assumptions it rests on."""

from __future__ import annotations

from collections.abc import Mapping

from fulcrum_sdk import Action, LocalizedText, Page, PageLine, PageSection, PluginContext, hookimpl
from fulcrum_sdk.data import PensionAccounts
from fulcrum_sdk.localtime import local_date
from fulcrum_sdk.money import yuan

from fulcrum_pension._accounts import Snapshot, snapshot
from fulcrum_pension.cap import ANNUAL_CAP_FEN, Room
from fulcrum_pension.home import CONTRIBUTE_URI
from fulcrum_pension.projection import Projection, project

__all__ = ["page"]

T = LocalizedText
_TITLE = T(zh_CN="我的养老", en="My pension")
_NOTHING = Page(
    title=_TITLE,
    summary=T(zh_CN="暂无您的养老账户信息。", en="We have no pension account information for you yet."),
)


def _money(fen: int) -> T:
    text = yuan(fen)
    return T(zh_CN=text, en=text)


def _accounts(pension: PensionAccounts, room: Room | None) -> PageSection:
    lines: list[PageLine] = []
    ss = pension.social_security
    if ss is not None:
        base = yuan(ss.monthly_base_fen)
        lines.append(PageLine(
            label=T(zh_CN="社保个人账户", en="Social security personal account"),
            value=_money(ss.balance_fen),
            note=T(
                zh_CN=f"累计缴费{ss.months_contributed}个月；缴费基数{base}/月；今年已缴{yuan(ss.contributions_this_year_fen)}",
                en=f"{ss.months_contributed} months contributed; base {base} a month; "
                f"{yuan(ss.contributions_this_year_fen)} this year",
            ),
        ))
    hf = pension.housing_fund
    if hf is not None:
        you, employer, paid = hf.employee_rate_pct, hf.employer_rate_pct, yuan(hf.contributions_this_year_fen)
        lines.append(PageLine(
            label=T(zh_CN="住房公积金", en="Housing provident fund"),
            value=_money(hf.balance_fen),
            note=T(
                zh_CN=f"个人缴存{you}%、单位缴存{employer}%；今年已缴{paid}",
                en=f"You pay {you}%, your employer {employer}%; {paid} this year",
            ),
        ))
    pp = pension.personal_pension
    if pp is not None and pp.opened and room is not None:
        cap, left = yuan(ANNUAL_CAP_FEN), yuan(room.left_fen)
        lines.append(PageLine(
            # The contributions the bank has not booked yet are added to its balance (as in the feed).
            label=T(zh_CN="个人养老金", en="Personal pension"),
            value=_money(pp.balance_fen + room.unbooked_fen),
            note=T(
                zh_CN=f"{room.year}年已缴{yuan(room.used_fen)}，还可缴{left}（每年上限{cap}，可抵扣个税）",
                en=f"{yuan(room.used_fen)} paid in {room.year}, {left} left under the {cap} yearly cap "
                "(tax-deductible)",
            ),
            action=Action(uri=CONTRIBUTE_URI) if room.left_fen else None,
        ))
    else:
        lines.append(PageLine(
            label=T(zh_CN="个人养老金", en="Personal pension"),
            value=T(zh_CN="未开立", en="Not opened"),
            note=T(
                zh_CN=f"每年最多缴存{yuan(ANNUAL_CAP_FEN)}，可抵扣个税",
                en=f"Up to {yuan(ANNUAL_CAP_FEN)} a year, tax-deductible",
            ),
        ))
    return PageSection(key="accounts", title=T(zh_CN="我的账户", en="My accounts"), lines=tuple(lines))


def _projection(projection: Projection) -> PageSection:
    total, year = yuan(projection.monthly_total_fen), projection.retirement_year
    return PageSection(
        key="projection",
        title=T(
            zh_CN=f"预计{year}年退休后每月约{total}", en=f"About {total} a month after retiring in {year}"
        ),
        summary=projection.assumptions,
        lines=(
            PageLine(label=T(zh_CN="基础养老金", en="Basic pension"), value=_money(projection.basic_fen)),
            PageLine(label=T(zh_CN="社保个人账户养老金", en="From the personal account"),
                     value=_money(projection.account_fen)),
            PageLine(label=T(zh_CN="个人养老金", en="Personal pension"),
                     value=_money(projection.personal_pension_fen)),
            PageLine(label=T(zh_CN="合计（每月）", en="Total a month"), value=T(zh_CN=total, en=total)),
        ),
    )


def overview(ctx: PluginContext, snap: Snapshot, *, view: str | None = None) -> Page:
    """The accounts, then the projection (none for a customer already at retirement age); ``view``
    ``projection`` (the projection card's link) opens on the projection."""
    contribution = snap.room.used_fen if snap.room is not None else 0
    projection = project(snap.pension, year=local_date(ctx.now).year, personal_contribution_fen=contribution)
    sections = [_accounts(snap.pension, snap.room)]
    if projection is not None:
        sections.insert(1 if view != "projection" else 0, _projection(projection))
    summary = (
        T(zh_CN="以下为估算，仅供参考，不构成收益承诺。", en="Estimates only, not a promise.")
        if projection is not None else None
    )
    return Page(title=_TITLE, summary=summary, sections=tuple(sections))


@hookimpl
async def page(ctx: PluginContext, path: str, query: Mapping[str, str]) -> Page | None:
    """``overview`` (``?view=projection`` opens on the projection); ``None`` for any other path
    (articles and the contribution form are the app's)."""
    if path != "overview":
        return None
    snap = await snapshot(ctx)
    return _NOTHING if snap is None else overview(ctx, snap, view=query.get("view"))
