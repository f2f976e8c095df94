"""The five parts of the check-up, each a pure function from the customer's facts to a scored line.

Every part returns a score 0–100 with a finding (what we saw, with the numbers) and a
recommendation (what to do), so the total can be explained line by line. Money stays integer fen;
only scores and shares, which are not money, are computed with rounding.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Literal

import msgspec
from fulcrum_sdk import LocalizedText as T
from fulcrum_sdk.data import AssetClass, Holding, RiskProfile
from fulcrum_sdk.models import RiskTolerance, risk_allows
from fulcrum_sdk.money import yuan

__all__ = [
    "ASSET_CLASSES",
    "CLASS_NAMES",
    "Facts",
    "Line",
    "PartKey",
    "allocation",
    "concentration",
    "idle_cash",
    "liquidity",
    "suitability",
    "target_mix",
]

PartKey = Literal["allocation", "concentration", "liquidity", "suitability", "idle_cash"]
ASSET_CLASSES: tuple[AssetClass, ...] = ("cash", "protection", "growth", "preservation")
CLASS_NAMES: dict[AssetClass, T] = {
    "cash": T(zh_CN="活钱", en="spending money"),
    "protection": T(zh_CN="保障", en="protection"),
    "growth": T(zh_CN="生钱", en="growth"),
    "preservation": T(zh_CN="保值", en="preservation"),
}

_CONCENTRATION_OK_BP, _CONCENTRATION_BAD_BP = (
    2_000,
    6_000,
)  # one product or issuer: ≤20 % fine, ≥60 % scores 0
_EMERGENCY_MONTHS_MIN, _EMERGENCY_MONTHS_MAX = 3, 6


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """The sums every part needs, computed once from holdings and (when granted) accounts."""

    holdings: tuple[Holding, ...]
    total_fen: int
    by_class_fen: dict[AssetClass, int]
    demand_fen: int
    monthly_spending_fen: int | None
    """``None`` when balances or spending are unknown: liquidity and idle cash are then skipped."""


class Line(msgspec.Struct, frozen=True, kw_only=True):
    """One part's outcome before weighting."""

    score: int
    finding: T
    recommendation: T


def _bp(part: int, whole: int) -> int:
    """``part`` as basis points of ``whole``, rounded half up."""
    return (part * 20_000 + whole) // (2 * whole) if whole else 0


def _pct(bp: int) -> int:
    return (bp + 50) // 100


def _about(fen: int) -> int:
    """An advised amount rounded to the nearest ¥100: advice, not an order, so no false precision."""
    rounded = (fen + 5_000) // 10_000 * 10_000
    return rounded or fen


def _clamp(score: float) -> int:
    return max(0, min(100, round(score)))


def target_mix(tolerance: RiskTolerance | None) -> dict[AssetClass, int]:
    """The household quadrant (10/20/30/40 %) in basis points, shifted by risk tolerance.

    Each step away from C3 moves ten points between growth and preservation: C1 holds 10 % growth
    and 60 % preservation, C5 50 % and 20 %. Without an assessment the C3 mix is used.
    """
    shift = (int(tolerance[1]) - 3) * 1_000 if tolerance else 0
    return {"cash": 1_000, "protection": 2_000, "growth": 3_000 + shift, "preservation": 4_000 - shift}


def allocation(facts: Facts, target_bp: dict[AssetClass, int]) -> tuple[Line, dict[AssetClass, int]]:
    """Score 100 minus the share of assets that would have to move to reach the target mix."""
    mix = {c: _bp(facts.by_class_fen.get(c, 0), facts.total_fen) for c in ASSET_CLASSES}
    move_bp = sum(abs(mix[c] - target_bp[c]) for c in ASSET_CLASSES) // 2
    shares_zh = "、".join(
        f"{CLASS_NAMES[c].zh_CN} {_pct(mix[c])}%（目标{_pct(target_bp[c])}%）" for c in ASSET_CLASSES
    )
    shares_en = ", ".join(
        f"{CLASS_NAMES[c].en} {_pct(mix[c])}% (target {_pct(target_bp[c])}%)" for c in ASSET_CLASSES
    )
    finding = T(
        zh_CN=f"{shares_zh}；约 {_pct(move_bp)}% 的资产需要调整。",
        en=f"{shares_en}; about {_pct(move_bp)}% of your assets would need to move.",
    )
    short = max(ASSET_CLASSES, key=lambda c: target_bp[c] - mix[c])
    gap_fen = (target_bp[short] - mix[short]) * facts.total_fen // 10_000
    if move_bp < 500:
        advice = T(
            zh_CN="配置与目标基本一致，保持每季度检视即可。",
            en="Close to your target; review it each quarter.",
        )
    else:
        advice = T(
            zh_CN=f"建议逐步增配{CLASS_NAMES[short].zh_CN}类资产约 {yuan(_about(gap_fen))}，"
            "资金可来自超配的类别。",
            en=f"Add about {yuan(_about(gap_fen))} of {CLASS_NAMES[short].en} assets over time, "
            "from the over-weight classes.",
        )
    return Line(score=_clamp(100 - move_bp / 100), finding=finding, recommendation=advice), mix


def concentration(facts: Facts) -> Line:
    """Score the largest single product or issuer as a share of assets (deposits excluded)."""
    market = [h for h in facts.holdings if h.product_type != "time_deposit"]
    if not market:
        return Line(
            score=100,
            finding=T(
                zh_CN="未持有存款以外的投资产品，不存在集中度风险。",
                en="No investments besides deposits to concentrate in.",
            ),
            recommendation=T(zh_CN="无需调整。", en="Nothing to change."),
        )
    top = max(market, key=lambda h: h.market_value_fen)
    issuers: dict[str, int] = defaultdict(int)
    for h in market:
        issuers[h.issuer] += h.market_value_fen
    top_issuer = max(issuers, key=lambda i: issuers[i])
    product_bp, issuer_bp = (
        _bp(top.market_value_fen, facts.total_fen),
        _bp(issuers[top_issuer], facts.total_fen),
    )
    worst_bp = max(product_bp, issuer_bp)
    span = _CONCENTRATION_BAD_BP - _CONCENTRATION_OK_BP
    score = _clamp(100 * (_CONCENTRATION_BAD_BP - worst_bp) / span)
    finding = T(
        zh_CN=f"单一产品「{top.name.zh_CN}」占总资产 {_pct(product_bp)}%；"
        f"同一发行机构最高占 {_pct(issuer_bp)}%。",
        en=f"One product ({top.name.en or top.name.zh_CN}) is {_pct(product_bp)}% of your assets; "
        f"the largest issuer holds {_pct(issuer_bp)}%.",
    )
    if worst_bp <= _CONCENTRATION_OK_BP:
        advice = T(zh_CN="分散程度良好，继续保持。", en="Well spread; keep it that way.")
    else:
        excess = (worst_bp - _CONCENTRATION_OK_BP) * facts.total_fen // 10_000
        advice = T(
            zh_CN=f"建议单一产品或发行机构不超过总资产的20%，可将约 {yuan(_about(excess))} "
            "分散到其他发行机构的产品。",
            en="Keep any one product or issuer under 20% of assets: "
            f"spread about {yuan(_about(excess))} to other issuers.",
        )
    return Line(score=score, finding=finding, recommendation=advice)


def liquidity(facts: Facts, spending_fen: int) -> Line:
    """Score months of spending covered by demand deposits and cash-like products (3–6 is the aim)."""
    liquid = facts.by_class_fen.get("cash", 0)  # demand deposits are counted in the cash class
    tenths = liquid * 10 // spending_fen
    months = f"{tenths // 10}.{tenths % 10}"
    finding = T(
        zh_CN=f"活钱约 {yuan(liquid)}，可覆盖 {months} 个月支出（建议 3–6 个月）。",
        en=f"About {yuan(liquid)} of ready money covers {months} months of spending (aim for 3–6).",
    )
    if tenths >= _EMERGENCY_MONTHS_MIN * 10:
        return Line(
            score=100,
            finding=finding,
            recommendation=T(zh_CN="应急资金充足。", en="Your emergency fund is sufficient."),
        )
    gap = _EMERGENCY_MONTHS_MIN * spending_fen - liquid
    return Line(
        score=_clamp(100 * liquid / (_EMERGENCY_MONTHS_MIN * spending_fen)),
        finding=finding,
        recommendation=T(
            zh_CN=f"建议补足至3个月支出，还需约 {yuan(_about(gap))}，可放在随用随取的现金管理产品中。",
            en=f"Build it up to three months: about {yuan(_about(gap))} more, "
            "kept in a same-day cash product.",
        ),
    )


def suitability(facts: Facts, risk: RiskProfile | None, today: date) -> tuple[Line, tuple[str, ...]]:
    """Score products held above the customer's risk tolerance, and an expired assessment."""
    if risk is None:
        line = Line(
            score=50,
            finding=T(
                zh_CN="尚未完成风险测评，无法判断持仓是否与您的风险承受能力匹配。",
                en="No risk assessment on file, so suitability cannot be judged.",
            ),
            recommendation=T(zh_CN="请完成风险测评问卷。", en="Complete the risk questionnaire."),
        )
        return line, ()
    above = [h for h in facts.holdings if not risk_allows(risk.tolerance, h.risk_level)]
    value = sum(h.market_value_fen for h in above)
    share = _pct(_bp(value, facts.total_fen))
    if above:
        names = "、".join(f"{h.name.zh_CN}（{h.risk_level}）" for h in above[:3]) + (
            "等" if len(above) > 3 else ""
        )
        names_en = ", ".join(f"{h.name.en or h.name.zh_CN} ({h.risk_level})" for h in above[:3])
        finding_zh = (
            f"{len(above)}只产品高于您的风险承受能力（{risk.tolerance}）：{names}，"
            f"合计 {yuan(value)}，占 {share}%。"
        )
        finding_en = (
            f"{len(above)} product(s) above your risk tolerance ({risk.tolerance}): {names_en}, "
            f"{yuan(value)} in total, {share}% of assets."
        )
        advice_zh, advice_en = (
            "建议评估后逐步减持这些产品，或重新进行风险测评。",
            "Consider reducing them, or retake the risk assessment.",
        )
        score = max(0, 50 - share)
    else:
        finding_zh, finding_en = (
            f"所有持仓均在您的风险承受能力（{risk.tolerance}）以内。",
            f"All holdings are within your tolerance ({risk.tolerance}).",
        )
        advice_zh, advice_en, score = "继续保持。", "Keep it up.", 100
    if risk.is_expired(today):
        finding_zh += f"风险测评已于{risk.expires_on.isoformat()}过期。"
        finding_en += f" Your risk assessment expired on {risk.expires_on.isoformat()}."
        advice_zh += "过期期间无法申购中高风险产品，请尽快重新测评。"
        advice_en += " Until you retake it, products above R1 cannot be bought."
        score = min(score, 50)
    line = Line(
        score=score,
        finding=T(zh_CN=finding_zh, en=finding_en),
        recommendation=T(zh_CN=advice_zh, en=advice_en),
    )
    return line, tuple(h.product_id for h in above)


def idle_cash(facts: Facts, spending_fen: int) -> Line:
    """Score demand deposits beyond six months of spending, as a share of assets."""
    idle = max(0, facts.demand_fen - _EMERGENCY_MONTHS_MAX * spending_fen)
    share = _pct(_bp(idle, facts.total_fen))
    if not idle:
        return Line(
            score=100,
            finding=T(
                zh_CN="活期存款没有超出6个月支出，没有明显的闲置资金。",
                en="No demand deposits beyond six months of spending.",
            ),
            recommendation=T(zh_CN="继续保持。", en="Keep it up."),
        )
    return Line(
        score=_clamp(100 - 2 * share),
        finding=T(
            zh_CN=f"活期存款超出6个月支出的部分约 {yuan(idle)}，占总资产 {share}%。",
            en=f"About {yuan(idle)} of demand deposits exceeds six months of spending: {share}% of assets.",
        ),
        recommendation=T(
            zh_CN="可按目标配置将闲置资金转入保值或生钱类产品。",
            en="Move the idle money into preservation or growth products along your target mix.",
        ),
    )
