"""The check-up's pages: ``report`` (``fulcrum://wealth-checkup/report``, every part explained line by
line, the mix against its target and what to do) and ``products/<id>`` (a listed product and whether
the customer may buy it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fulcrum_sdk import Action, LocalizedText, Page, PageLine, PageSection, PluginContext, hookimpl
from fulcrum_sdk.data import Holding
from fulcrum_sdk.localtime import local_date
from fulcrum_sdk.models import risk_allows
from fulcrum_sdk.money import yuan

from fulcrum_wealth_checkup._parts import ASSET_CLASSES, CLASS_NAMES, shown_mix
from fulcrum_wealth_checkup._report import assess
from fulcrum_wealth_checkup.catalogue import Product, product
from fulcrum_wealth_checkup.home import report_opened
from fulcrum_wealth_checkup.scoring import PART_TITLES, CheckUp, PartKey

__all__ = ["page", "product_page", "report_page"]

T = LocalizedText
_REPORT_TITLE = T(zh_CN="财富体检报告", en="Wealth check-up report")
_NO_REPORT = Page(
    title=_REPORT_TITLE,
    summary=T(
        zh_CN="暂无可体检的持仓：持有理财、基金、保险或存款后即可查看体检报告。",
        en="Nothing to check yet: the report appears once you hold wealth products, funds, insurance "
        "or deposits.",
    ),
)
_NEEDS_ACCOUNTS = T(
    zh_CN="需要您授权读取账户余额与收支后评估", en="Needs access to your balances and spending"
)
_SKIPPED_WHY: dict[PartKey, T] = {"liquidity": _NEEDS_ACCOUNTS, "idle_cash": _NEEDS_ACCOUNTS}
_NOT_ASSESSED = T(zh_CN="未评估", en="Not assessed")
_ALL_HEALTHY = PageLine(
    label=T(zh_CN="各项均健康", en="Every part is healthy"),
    note=T(zh_CN="保持现有配置，定期复查即可。", en="Keep your mix and check again from time to time."),
)


def _same(text: str) -> T:
    """Text that reads the same in both languages (an amount, a code)."""
    return T(zh_CN=text, en=text)


def _pct(bp: int) -> str:
    return f"{(bp + 50) // 100}%"


def _parts(report: CheckUp) -> PageSection:
    lines = [
        PageLine(
            label=part.title,
            value=T(zh_CN=f"{part.score}分 · 权重{part.weight}%", en=f"{part.score} · weight {part.weight}%"),
            note=part.finding,
        )
        for part in report.parts
    ]
    lines += [
        PageLine(label=PART_TITLES[key], value=_NOT_ASSESSED, note=_SKIPPED_WHY.get(key))
        for key in report.skipped
    ]
    return PageSection(
        key="parts",
        title=T(zh_CN="逐项得分", en="Part by part"),
        summary=T(
            zh_CN="总分是已评估各项得分按权重的加权平均；未评估的项不计入。",
            en="The score is the weighted mean of the parts assessed; a part not assessed is left out.",
        ),
        lines=tuple(lines),
    )


def _advice(report: CheckUp) -> PageSection:
    ranked = sorted((p for p in report.parts if p.score < 100), key=lambda p: (p.score, -p.weight))
    lines = tuple(PageLine(label=p.title, note=p.recommendation) for p in ranked) or (_ALL_HEALTHY,)
    return PageSection(key="advice", title=T(zh_CN="建议", en="What to do"), lines=lines)


def _mix(report: CheckUp) -> PageSection:
    now = shown_mix(report.mix_bp)  # the allocation finding's shares, adding up to 100
    return PageSection(
        key="mix",
        title=T(zh_CN="资产配置：当前与目标", en="Your mix against the target"),
        summary=T(
            zh_CN="目标参考标准普尔家庭资产配置（活钱10%、保障20%、生钱30%、保值40%），按您的风险承受能力调整。",
            en="The target follows the household asset quadrant (10% spending, 20% protection, 30% growth, "
            "40% preservation), shifted by your risk tolerance.",
        ),
        lines=tuple(
            PageLine(
                label=CLASS_NAMES[c],
                value=T(
                    zh_CN=f"当前{now[c]}% · 目标{_pct(report.target_bp[c])}",
                    en=f"{now[c]}% now · target {_pct(report.target_bp[c])}",
                ),
            )
            for c in ASSET_CLASSES
        ),
    )


def _mismatched(report: CheckUp, holdings: Sequence[Holding]) -> PageSection:
    """Each position above the tolerance, by name with its risk level and value (the report keeps ids)."""
    lines = []
    for h in holdings:
        if h.product_id in report.mismatched:
            listed = product(h.product_id)
            lines.append(PageLine(
                label=h.name,
                value=_same(f"{h.risk_level} · {yuan(h.market_value_fen)}"),
                note=T(zh_CN="高于您的风险承受能力", en="Above your risk tolerance"),
                action=Action(uri=listed.uri) if listed else None,
            ))
    return PageSection(
        key="suitability", title=T(zh_CN="超出风险承受能力的持仓", en="Holdings above your risk tolerance"),
        lines=tuple(lines),
    )


_FOCUS: dict[str, str] = {"allocation": "mix", "suitability": "suitability"}
"""``?part=`` of a link → the section the page opens with (the parts come first otherwise)."""


def report_page(report: CheckUp, holdings: Sequence[Holding] = (), *, focus: str | None = None) -> Page:
    """The whole report: the parts with their findings, what to do, the mix and the ``holdings`` above
    the customer's tolerance; ``focus`` (a part, from the link) puts the section about it first."""
    sections = [_parts(report), _advice(report), _mix(report)]
    if report.mismatched:
        sections.append(_mismatched(report, holdings))
    first = _FOCUS.get(focus or "")
    sections.sort(key=lambda section: section.key != first)  # stable: the rest keep their order
    total = yuan(report.total_assets_fen)
    return Page(
        title=_REPORT_TITLE,
        summary=T(
            zh_CN=f"健康分 {report.score} 分（满分100）· 总资产 {total}",
            en=f"Score {report.score} of 100 · total assets {total}",
        ),
        sections=tuple(sections),
    )


def product_page(ctx: PluginContext, listed: Product) -> Page:
    """A listed product's terms, and whether this customer may buy it today."""
    today = local_date(ctx.now)
    risk = ctx.data.risk() if ctx.data.allows("profile:risk") else None
    if not listed.on_sale(today):
        verdict = T(zh_CN="已停售", en="No longer on sale")
    elif risk is None or risk.is_expired(today):
        verdict = T(zh_CN="请先完成风险承受能力评估", en="Complete your risk assessment first")
    elif risk_allows(risk.tolerance, listed.risk_level):
        verdict = T(
            zh_CN=f"符合您的风险承受能力（{risk.tolerance}）",
            en=f"Suits your risk tolerance ({risk.tolerance})",
        )
    else:
        verdict = T(zh_CN=f"高于您的风险承受能力（{risk.tolerance}），不能购买",
                    en=f"Above your risk tolerance ({risk.tolerance}); you cannot buy it")
    terms = (
        PageLine(label=T(zh_CN="发行机构", en="Issuer"), value=_same(listed.issuer)),
        PageLine(label=T(zh_CN="风险等级", en="Risk level"), value=_same(listed.risk_level)),
        PageLine(label=T(zh_CN="起购金额", en="Minimum"), value=_same(yuan(listed.min_purchase_fen))),
        PageLine(label=T(zh_CN="递增金额", en="Increment"), value=_same(yuan(listed.step_fen))),
        PageLine(label=T(zh_CN="适当性", en="Suitability"), value=verdict),
    )
    return Page(
        title=listed.name, summary=listed.pitch,
        sections=(PageSection(key="terms", title=T(zh_CN="产品要素", en="Terms"), lines=terms),),
    )


@hookimpl
async def page(ctx: PluginContext, path: str, query: Mapping[str, str]) -> Page | None:
    """``report`` (``?part=allocation`` opens on the mix; opening it is seeing what the home page's
    popup told) and ``products/<id>``; ``None`` for anything else (articles are the app's)."""
    if path == "report":
        report = assess(ctx)
        if report is None:
            return _NO_REPORT
        await report_opened(ctx, report)
        held = ctx.data.holdings() if report.mismatched else None  # granted: assess() read it too
        return report_page(report, held.items if held is not None else (), focus=query.get("part"))
    head, _, product_id = path.partition("/")
    if head == "products" and product_id:
        listed = product(product_id)
        return product_page(ctx, listed) if listed is not None else None
    return None
