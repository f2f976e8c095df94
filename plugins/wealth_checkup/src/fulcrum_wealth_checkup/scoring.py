"""The wealth check-up: a 0–100 financial-health score made of five weighted, explained parts.

    allocation     35   distance from the target mix for the customer's risk tolerance
    concentration  20   the largest single product or issuer
    liquidity      20   months of spending covered by ready money (needs ``accounts:read``)
    suitability    15   holdings above the risk tolerance, an expired assessment
    idle cash      10   demand deposits beyond six months of spending (needs ``accounts:read``)

The total is the weighted mean of the parts that could be assessed; a skipped part is listed, not
guessed. The function is pure: hooks fetch data through the scoped context and pass it in.
"""

from __future__ import annotations

from datetime import date

import msgspec
from fulcrum_sdk import LocalizedText as T
from fulcrum_sdk.data import Accounts, AssetClass, Holdings, RiskProfile

from fulcrum_wealth_checkup import _parts
from fulcrum_wealth_checkup._parts import ASSET_CLASSES, Facts, PartKey

__all__ = ["PART_TITLES", "WEIGHTS", "CheckUp", "Part", "PartKey", "check_up", "target_mix"]

target_mix = _parts.target_mix

WEIGHTS: dict[PartKey, int] = {
    "allocation": 35,
    "concentration": 20,
    "liquidity": 20,
    "suitability": 15,
    "idle_cash": 10,
}
PART_TITLES: dict[PartKey, T] = {
    "allocation": T(zh_CN="资产配置", en="Asset allocation"),
    "concentration": T(zh_CN="集中度", en="Concentration"),
    "liquidity": T(zh_CN="应急资金", en="Emergency fund"),
    "suitability": T(zh_CN="风险匹配", en="Suitability"),
    "idle_cash": T(zh_CN="闲置资金", en="Idle cash"),
}


class Part(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the report: its score, its weight in the total, what we found and what to do."""

    key: PartKey
    title: T
    score: int
    weight: int
    finding: T
    recommendation: T


class CheckUp(msgspec.Struct, frozen=True, kw_only=True):
    """The whole report. Shares are basis points of ``total_assets_fen``."""

    score: int
    parts: tuple[Part, ...]
    skipped: tuple[PartKey, ...]
    total_assets_fen: int
    mix_bp: dict[AssetClass, int]
    target_bp: dict[AssetClass, int]
    mismatched: tuple[str, ...]
    """Product ids held above the customer's risk tolerance."""

    @property
    def weakest(self) -> Part:
        """The part that costs the most: lowest score, the heavier weight on a tie."""
        return min(self.parts, key=lambda p: (p.score, -p.weight))

    def shortfall(self) -> AssetClass | None:
        """The asset class furthest below its target, or ``None`` when none is below by 5 points."""
        gaps = {c: self.target_bp[c] - self.mix_bp[c] for c in ASSET_CLASSES}
        worst = max(ASSET_CLASSES, key=lambda c: gaps[c])
        return worst if gaps[worst] >= 500 else None


def _facts(holdings: Holdings | None, accounts: Accounts | None) -> Facts:
    items = holdings.items if holdings else ()
    by_class: dict[AssetClass, int] = dict.fromkeys(ASSET_CLASSES, 0)
    for h in items:
        by_class[h.asset_class] += h.market_value_fen
    demand = 0
    for a in accounts.items if accounts else ():
        if a.kind == "demand":
            demand += a.balance_fen
            by_class["cash"] += a.balance_fen
        elif a.kind == "time_deposit":
            by_class["preservation"] += a.balance_fen
    spending = accounts.monthly_spending_fen if accounts and accounts.monthly_spending_fen > 0 else None
    return Facts(
        holdings=items,
        total_fen=sum(by_class.values()),
        by_class_fen=by_class,
        demand_fen=demand,
        monthly_spending_fen=spending,
    )


def check_up(
    *, holdings: Holdings | None, accounts: Accounts | None, risk: RiskProfile | None, today: date
) -> CheckUp | None:
    """Score the customer; ``None`` when there are no assets to assess.

    ``accounts`` is ``None`` when the plugin was not granted ``accounts:read``: liquidity and idle
    cash are then skipped, and the allocation counts holdings only.
    """
    facts = _facts(holdings, accounts)
    if facts.total_fen <= 0:
        return None
    target = target_mix(risk.tolerance if risk else None)
    allocation, mix = _parts.allocation(facts, target)
    suitability, mismatched = _parts.suitability(facts, risk, today)
    lines: dict[PartKey, _parts.Line] = {
        "allocation": allocation,
        "concentration": _parts.concentration(facts),
    }
    if facts.monthly_spending_fen is not None:
        lines["liquidity"] = _parts.liquidity(facts, facts.monthly_spending_fen)
    lines["suitability"] = suitability
    if facts.monthly_spending_fen is not None:
        lines["idle_cash"] = _parts.idle_cash(facts, facts.monthly_spending_fen)
    parts = tuple(
        Part(
            key=k,
            title=PART_TITLES[k],
            score=line.score,
            weight=WEIGHTS[k],
            finding=line.finding,
            recommendation=line.recommendation,
        )
        for k, line in lines.items()
    )
    weight = sum(p.weight for p in parts)
    score = (sum(p.score * p.weight for p in parts) * 2 + weight) // (2 * weight)
    return CheckUp(
        score=score,
        parts=parts,
        skipped=tuple(k for k in WEIGHTS if k not in lines),
        total_assets_fen=facts.total_fen,
        mix_bp=mix,
        target_bp=target,
        mismatched=mismatched,
    )
