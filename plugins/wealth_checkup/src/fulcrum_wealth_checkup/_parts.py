"""The five parts of the check-up: each part's score, and its explained line on demand.

:func:`measure` scores every part in one pass over the customer's holdings and accounts; each part
also has a finding (what we saw, with the numbers) and a recommendation (what to do), so the total
can be explained line by line, but that text is rendered only for the parts a screen shows. Money
stays integer fen; only scores and shares, which are not money, are computed with rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import partial
from typing import Literal, get_args

import msgspec
from fulcrum_sdk import LocalizedText as T
from fulcrum_sdk.data import Accounts, AssetClass, Holding, Holdings, RiskProfile
from fulcrum_sdk.models import RiskLevel, RiskTolerance, risk_allows
from fulcrum_sdk.money import yuan

__all__ = [
    "ASSET_CLASSES",
    "CLASS_NAMES",
    "Line",
    "Measured",
    "Measurement",
    "PartKey",
    "measure",
    "shown_mix",
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


class Line(msgspec.Struct, frozen=True, kw_only=True):
    """One part's outcome before weighting."""

    score: int
    finding: T
    recommendation: T


Measured = tuple[int, Callable[[], "Line"]]
"""One part's score now, and its explained line only on demand: ``(score, explain)``.

Most pages show just the score (the home banner, search); the text with its shares and yuan
amounts costs several times the arithmetic, so it is rendered only for the part that is shown.
``explain()`` is pure and returns a line whose ``score`` is ``score``. A plain tuple, not a
NamedTuple, because five are built on every home page.
"""


def _bp(part: int, whole: int) -> int:
    """``part`` as basis points of ``whole``, rounded half up."""
    return (part * 20_000 + whole) // (2 * whole) if whole else 0


def _pct(bp: int) -> int:
    return (bp + 50) // 100


def _apportion(amounts: list[int], units: int) -> list[int]:
    """``amounts`` as whole shares of ``units`` that add up to exactly ``units`` (largest remainder).

    Rounding each share on its own can show a mix of 33 % + 33 % + 33 % or 13 % + 13 % + 75 %; a
    mix is a split of the whole, so the shown shares must add up to it. Ties go to the first.
    """
    whole = sum(amounts)
    if whole <= 0:
        return [0] * len(amounts)
    shares, rests = [], []
    for amount in amounts:
        share, rest = divmod(amount * units, whole)
        shares.append(share)
        rests.append(rest)
    left = units - sum(shares)  # fewer than len(amounts): the remainders add up to less
    while left:  # the largest remainder left, the first of equals (cheaper than sorting four)
        i = rests.index(max(rests))
        shares[i] += 1
        rests[i] = -1
        left -= 1
    return shares


def shown_mix(mix_bp: dict[AssetClass, int]) -> dict[AssetClass, int]:
    """The mix in whole percent as every screen shows it: shares that add up to 100."""
    return dict(zip(ASSET_CLASSES, _apportion([mix_bp[c] for c in ASSET_CLASSES], 100), strict=True))


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


_TARGETS: dict[RiskTolerance | None, dict[AssetClass, int]] = {
    t: target_mix(t) for t in (None, *get_args(RiskTolerance))
}
"""Every tolerance's target mix, built once; shared, so read it and never change it."""
_VERDICTS: dict[RiskTolerance, dict[RiskLevel, bool]] = {
    t: {level: risk_allows(t, level) for level in get_args(RiskLevel)} for t in get_args(RiskTolerance)
}
""":func:`~fulcrum_sdk.models.risk_allows` for every tolerance and level, asked once."""


def _allocation_line(
    score: int, mix: dict[AssetClass, int], target_bp: dict[AssetClass, int], move_bp: int, total: int
) -> Line:
    pct = shown_mix(mix)  # shown shares add up to 100
    shares_zh = "、".join(
        f"{CLASS_NAMES[c].zh_CN} {pct[c]}%（目标{_pct(target_bp[c])}%）" for c in ASSET_CLASSES
    )
    shares_en = ", ".join(
        f"{CLASS_NAMES[c].en} {pct[c]}% (target {_pct(target_bp[c])}%)" for c in ASSET_CLASSES
    )
    finding = T(
        zh_CN=f"{shares_zh}；约 {_pct(move_bp)}% 的资产需要调整。",
        en=f"{shares_en}; about {_pct(move_bp)}% of your assets would need to move.",
    )
    short = max(ASSET_CLASSES, key=lambda c: target_bp[c] - mix[c])
    gap_fen = (target_bp[short] - mix[short]) * total // 10_000
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
    return Line(score=score, finding=finding, recommendation=advice)


_NOTHING_CONCENTRATED = Line(
    score=100,
    finding=T(
        zh_CN="未持有存款以外的投资产品，不存在集中度风险。",
        en="No investments besides deposits to concentrate in.",
    ),
    recommendation=T(zh_CN="无需调整。", en="Nothing to change."),
)
_NO_RISK_PROFILE = Line(
    score=50,
    finding=T(
        zh_CN="尚未完成风险测评，无法判断持仓是否与您的风险承受能力匹配。",
        en="No risk assessment on file, so suitability cannot be judged.",
    ),
    recommendation=T(zh_CN="请完成风险测评问卷。", en="Complete the risk questionnaire."),
)
_NO_IDLE_CASH = Line(
    score=100,
    finding=T(
        zh_CN="活期存款没有超出6个月支出，没有明显的闲置资金。",
        en="No demand deposits beyond six months of spending.",
    ),
    recommendation=T(zh_CN="继续保持。", en="Keep it up."),
)


def _fixed(line: Line) -> Measured:
    """A part whose line does not depend on the customer's numbers, built once at import."""
    return (line.score, lambda: line)


_NOTHING_CONCENTRATED_PART = _fixed(_NOTHING_CONCENTRATED)
_NO_RISK_PROFILE_PART = _fixed(_NO_RISK_PROFILE)
_NO_IDLE_CASH_PART = _fixed(_NO_IDLE_CASH)


def _concentration_line(
    score: int, top: Holding, product_bp: int, issuer_bp: int, worst_bp: int, total: int
) -> Line:
    finding = T(
        zh_CN=f"单一产品「{top.name.zh_CN}」占总资产 {_pct(product_bp)}%；"
        f"同一发行机构最高占 {_pct(issuer_bp)}%。",
        en=f"One product ({top.name.en or top.name.zh_CN}) is {_pct(product_bp)}% of your assets; "
        f"the largest issuer holds {_pct(issuer_bp)}%.",
    )
    if worst_bp <= _CONCENTRATION_OK_BP:
        advice = T(zh_CN="分散程度良好，继续保持。", en="Well spread; keep it that way.")
    else:
        excess = (worst_bp - _CONCENTRATION_OK_BP) * total // 10_000
        advice = T(
            zh_CN=f"建议单一产品或发行机构不超过总资产的20%，可将约 {yuan(_about(excess))} "
            "分散到其他发行机构的产品。",
            en="Keep any one product or issuer under 20% of assets: "
            f"spread about {yuan(_about(excess))} to other issuers.",
        )
    return Line(score=score, finding=finding, recommendation=advice)


def _liquidity_line(score: int, liquid: int, tenths: int, spending_fen: int) -> Line:
    months = f"{tenths // 10}.{tenths % 10}"
    finding = T(
        zh_CN=f"活钱约 {yuan(liquid)}，可覆盖 {months} 个月支出（建议 3–6 个月）。",
        en=f"About {yuan(liquid)} of ready money covers {months} months of spending (aim for 3–6).",
    )
    if tenths >= _EMERGENCY_MONTHS_MIN * 10:
        advice = T(zh_CN="应急资金充足。", en="Your emergency fund is sufficient.")
    else:
        gap = _EMERGENCY_MONTHS_MIN * spending_fen - liquid
        advice = T(
            zh_CN=f"建议补足至3个月支出，还需约 {yuan(_about(gap))}，可放在随用随取的现金管理产品中。",
            en=f"Build it up to three months: about {yuan(_about(gap))} more, "
            "kept in a same-day cash product.",
        )
    return Line(score=score, finding=finding, recommendation=advice)


def _suitability_line(
    score: int, risk: RiskProfile, above: list[Holding], value: int, share: int, expired: bool
) -> Line:
    tolerance = risk.tolerance
    if above:
        names = "、".join(f"{h.name.zh_CN}（{h.risk_level}）" for h in above[:3]) + (
            "等" if len(above) > 3 else ""
        )
        names_en = ", ".join(f"{h.name.en or h.name.zh_CN} ({h.risk_level})" for h in above[:3]) + (
            " and others" if len(above) > 3 else ""
        )
        finding_zh = (
            f"{len(above)}只产品高于您的风险承受能力（{tolerance}）：{names}，"
            f"合计 {yuan(value)}，占 {share}%。"
        )
        finding_en = (
            f"{len(above)} product(s) above your risk tolerance ({tolerance}): {names_en}, "
            f"{yuan(value)} in total, {share}% of assets."
        )
        advice_zh, advice_en = (
            "建议评估后逐步减持这些产品，或重新进行风险测评。",
            "Consider reducing them, or retake the risk assessment.",
        )
    else:
        finding_zh, finding_en = (
            f"所有持仓均在您的风险承受能力（{tolerance}）以内。",
            f"All holdings are within your tolerance ({tolerance}).",
        )
        advice_zh, advice_en = "继续保持。", "Keep it up."
    if expired:
        finding_zh += f"风险测评已于{risk.expires_on.isoformat()}过期。"
        finding_en += f" Your risk assessment expired on {risk.expires_on.isoformat()}."
        advice_zh += "过期期间无法申购R1以上的产品，请尽快重新测评。"
        advice_en += " Until you retake it, products above R1 cannot be bought."
    return Line(
        score=score,
        finding=T(zh_CN=finding_zh, en=finding_en),
        recommendation=T(zh_CN=advice_zh, en=advice_en),
    )


def _idle_cash_line(score: int, idle: int, share: int) -> Line:
    return Line(
        score=score,
        finding=T(
            zh_CN=f"活期存款超出6个月支出的部分约 {yuan(idle)}，占总资产 {share}%。",
            en=f"About {yuan(idle)} of demand deposits exceeds six months of spending: {share}% of assets.",
        ),
        recommendation=T(
            zh_CN="可按目标配置将闲置资金转入保值或生钱类产品。",
            en="Move the idle money into preservation or growth products along your target mix.",
        ),
    )


Measurement = tuple[
    dict[PartKey, Measured], int, dict[AssetClass, int], dict[AssetClass, int], tuple[str, ...]
]
"""``(parts, total_fen, mix_bp, target_bp, mismatched)``: the parts in report order, each
``(score, explain)``; the assets in fen; the mix and its target in basis points of them; the product
ids held above the risk tolerance. ``target_bp`` is shared: read it, never change it."""


def measure(
    holdings: Holdings | None, accounts: Accounts | None, risk: RiskProfile | None, today: date
) -> Measurement | None:
    """Score every part in one pass; ``None`` when there are no assets to assess.

    ``accounts`` is ``None`` without ``accounts:read`` (liquidity and idle cash are then skipped, as
    they are when spending is unknown). The parts and their rules:

    - allocation: 100 minus the share of assets that would have to move to reach the target mix;
    - concentration: the largest single product or issuer as a share of assets (deposits excluded),
      full marks at 20 % or less, none at 60 %;
    - liquidity: months of spending covered by the cash class (demand deposits included), 3 is full;
    - suitability: 50 minus the share of assets above the risk tolerance, 100 when none is; at most
      50 once the assessment has expired;
    - idle cash: demand deposits beyond six months of spending, two points per percent of assets.

    This runs on every home page, so it is plain loops over locals; each part's text is a
    ``partial`` of its renderer, called only for the part a screen shows.
    """
    items = holdings.items if holdings else ()
    cash = protection = growth = preservation = 0
    top: Holding | None = None
    top_fen = 0
    issuers: dict[str, int] = {}
    for h in items:
        value = h.market_value_fen
        kind = h.asset_class
        if kind == "cash":
            cash += value
        elif kind == "preservation":
            preservation += value
        elif kind == "growth":
            growth += value
        elif kind == "protection":
            protection += value
        else:
            raise KeyError(kind)
        if h.product_type != "time_deposit":
            if top is None or value > top_fen:  # the first of equals, as max() picks
                top, top_fen = h, value
            issuers[h.issuer] = issuers.get(h.issuer, 0) + value
    demand = 0
    spending: int | None = None
    if accounts:
        for a in accounts.items:
            if a.kind == "demand":
                demand += a.balance_fen
                cash += a.balance_fen
            elif a.kind == "time_deposit":
                preservation += a.balance_fen
        if accounts.monthly_spending_fen > 0:
            spending = accounts.monthly_spending_fen
    total = cash + protection + growth + preservation
    if total <= 0:
        return None
    tolerance = risk.tolerance if risk else None
    target = _TARGETS.get(tolerance) or target_mix(tolerance)

    shares = _apportion([cash, protection, growth, preservation], 10_000)
    mix: dict[AssetClass, int] = {
        "cash": shares[0], "protection": shares[1], "growth": shares[2], "preservation": shares[3]
    }
    move_bp = (
        abs(shares[0] - target["cash"])
        + abs(shares[1] - target["protection"])
        + abs(shares[2] - target["growth"])
        + abs(shares[3] - target["preservation"])
    ) // 2
    score = max(0, 100 - _pct(move_bp))  # exactly what the finding says must move
    parts: dict[PartKey, Measured] = {
        "allocation": (score, partial(_allocation_line, score, mix, target, move_bp, total))
    }

    if top is None:
        parts["concentration"] = _NOTHING_CONCENTRATED_PART
    else:
        product_bp, issuer_bp = _bp(top_fen, total), _bp(max(issuers.values()), total)
        worst_bp = max(product_bp, issuer_bp)
        span = _CONCENTRATION_BAD_BP - _CONCENTRATION_OK_BP
        score = _clamp(100 * (_CONCENTRATION_BAD_BP - worst_bp) / span)
        parts["concentration"] = (
            score, partial(_concentration_line, score, top, product_bp, issuer_bp, worst_bp, total)
        )

    if spending is not None:
        tenths = cash * 10 // spending
        enough = tenths >= _EMERGENCY_MONTHS_MIN * 10
        score = 100 if enough else _clamp(100 * cash / (_EMERGENCY_MONTHS_MIN * spending))
        parts["liquidity"] = (score, partial(_liquidity_line, score, cash, tenths, spending))

    mismatched: tuple[str, ...] = ()
    if risk is None:
        parts["suitability"] = _NO_RISK_PROFILE_PART
    else:
        verdicts = _VERDICTS.get(risk.tolerance, {})
        above: list[Holding] = []
        value = 0
        for h in items:
            allowed = verdicts.get(h.risk_level)
            if allowed is None:
                allowed = risk_allows(risk.tolerance, h.risk_level)
            if not allowed:
                above.append(h)
                value += h.market_value_fen
        share = _pct(_bp(value, total))
        expired = risk.is_expired(today)
        score = max(0, 50 - share) if above else 100
        if expired:
            score = min(score, 50)
        parts["suitability"] = (score, partial(_suitability_line, score, risk, above, value, share, expired))
        if above:
            mismatched = tuple(h.product_id for h in above)

    if spending is not None:
        idle = max(0, demand - _EMERGENCY_MONTHS_MAX * spending)
        if not idle:
            parts["idle_cash"] = _NO_IDLE_CASH_PART
        else:
            share = _pct(_bp(idle, total))
            score = _clamp(100 - 2 * share)
            parts["idle_cash"] = (score, partial(_idle_cash_line, score, idle, share))

    return parts, total, mix, target, mismatched
