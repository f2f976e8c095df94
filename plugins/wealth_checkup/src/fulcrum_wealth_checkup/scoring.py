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
from fulcrum_wealth_checkup._parts import ASSET_CLASSES, PartKey

__all__ = [
    "PART_TITLES",
    "WEIGHTS",
    "CheckUp",
    "Glance",
    "Part",
    "PartKey",
    "check_up",
    "glance",
    "target_mix",
]

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
        return _shortfall(self.mix_bp, self.target_bp)


def _shortfall(mix_bp: dict[AssetClass, int], target_bp: dict[AssetClass, int]) -> AssetClass | None:
    gaps = {c: target_bp[c] - mix_bp[c] for c in ASSET_CLASSES}
    worst = max(ASSET_CLASSES, key=lambda c: gaps[c])
    return worst if gaps[worst] >= 500 else None


class Glance:
    """The check-up's numbers without its text: the total, the weakest part and the mismatches.

    The home page and search show only these, and rendering all five parts' text costs several
    times the arithmetic, so a part's line is rendered only when :meth:`part` asks for it.
    :meth:`report` renders everything and equals :func:`check_up` for the same inputs.
    """

    __slots__ = ("_measured", "_mix", "_target", "_total", "mismatched", "score", "weakest")

    def __init__(
        self,
        *,
        measured: dict[PartKey, _parts.Measured],
        total_fen: int,
        mix_bp: dict[AssetClass, int],
        target_bp: dict[AssetClass, int],
        mismatched: tuple[str, ...],
    ) -> None:
        self._measured, self._total, self._mix, self._target = measured, total_fen, mix_bp, target_bp
        self.mismatched = mismatched
        """Product ids held above the customer's risk tolerance."""
        weight = weighted = 0
        weakest: PartKey = "allocation"
        low, low_weight = 101, 0
        for key, (score, _) in measured.items():  # report order: the first of equals wins, as in CheckUp
            w = WEIGHTS[key]
            weight += w
            weighted += score * w
            if score < low or (score == low and w > low_weight):
                weakest, low, low_weight = key, score, w
        self.score: int = (weighted * 2 + weight) // (2 * weight)
        self.weakest: PartKey = weakest
        """The part that costs the most: lowest score, the heavier weight on a tie."""

    def part(self, key: PartKey) -> Part:
        """One part of the report with its text (``KeyError`` for a skipped part)."""
        line = self._measured[key][1]()
        return Part(
            key=key,
            title=PART_TITLES[key],
            score=line.score,
            weight=WEIGHTS[key],
            finding=line.finding,
            recommendation=line.recommendation,
        )

    def shortfall(self) -> AssetClass | None:
        """As :meth:`CheckUp.shortfall`."""
        return _shortfall(self._mix, self._target)

    def report(self) -> CheckUp:
        """The whole report, every part explained."""
        return CheckUp(
            score=self.score,
            parts=tuple(self.part(k) for k in self._measured),
            skipped=tuple(k for k in WEIGHTS if k not in self._measured),
            total_assets_fen=self._total,
            mix_bp=self._mix,
            target_bp=dict(self._target),  # a glance's target may be the one every glance shares
            mismatched=self.mismatched,
        )


def glance(
    *, holdings: Holdings | None, accounts: Accounts | None, risk: RiskProfile | None, today: date
) -> Glance | None:
    """Score the customer without rendering any text; ``None`` when there are no assets to assess.

    ``accounts`` is ``None`` when the plugin was not granted ``accounts:read``: liquidity and idle
    cash are then skipped, and the allocation counts holdings only.
    """
    found = _parts.measure(holdings, accounts, risk, today)
    if found is None:
        return None
    measured, total, mix, target, mismatched = found
    return Glance(measured=measured, total_fen=total, mix_bp=mix, target_bp=target, mismatched=mismatched)


def check_up(
    *, holdings: Holdings | None, accounts: Accounts | None, risk: RiskProfile | None, today: date
) -> CheckUp | None:
    """The full report with every part explained; ``None`` when there are no assets to assess."""
    seen = glance(holdings=holdings, accounts=accounts, risk=risk, today=today)
    return None if seen is None else seen.report()
