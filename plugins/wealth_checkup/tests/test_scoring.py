"""The check-up score: target mixes, the five parts, their boundaries and the weighted total."""

from __future__ import annotations

import re
from datetime import date

import msgspec
import pytest
from fulcrum_sdk import LocalizedText
from fulcrum_sdk.data import Account, Accounts, Holding, Holdings, RiskProfile
from fulcrum_sdk.testing import PERSONAS
from fulcrum_wealth_checkup.scoring import WEIGHTS, CheckUp, check_up, target_mix

TODAY = date(2026, 11, 28)


def _holding(
    pid: str,
    fen: int,
    *,
    cls: str = "growth",
    risk: str = "R3",
    issuer: str = "fund-x",
    ptype: str = "equity_fund",
) -> Holding:
    return msgspec.convert(
        {
            "product_id": pid,
            "name": {"zh-CN": pid},
            "issuer": issuer,
            "product_type": ptype,
            "asset_class": cls,
            "risk_level": risk,
            "market_value_fen": fen,
        },
        Holding,
    )


def _accounts(demand_fen: int, spending_fen: int) -> Accounts:
    demand = Account(id="d", kind="demand", name=LocalizedText(zh_CN="活期"), balance_fen=demand_fen)
    return Accounts(items=(demand,), monthly_income_fen=0, monthly_spending_fen=spending_fen)


def _risk(tolerance: str, expires: date = date(2027, 6, 30)) -> RiskProfile:
    return RiskProfile(tolerance=tolerance, assessed_on=date(2025, 7, 1), expires_on=expires)  # type: ignore[arg-type]


def _persona(name: str) -> CheckUp:
    p = PERSONAS[name]
    report = check_up(holdings=p.holdings, accounts=p.accounts, risk=p.risk, today=TODAY)
    assert report is not None
    return report


def _part(report: CheckUp, key: str) -> int:
    return next(p.score for p in report.parts if p.key == key)


@pytest.mark.parametrize(
    ("tolerance", "growth", "preservation"),
    [
        ("C1", 1_000, 6_000),
        ("C2", 2_000, 5_000),
        ("C3", 3_000, 4_000),
        ("C4", 4_000, 3_000),
        ("C5", 5_000, 2_000),
    ],
)
def test_target_mix_shifts_growth_and_preservation_by_tolerance(
    tolerance: str, growth: int, preservation: int
) -> None:
    """Each tolerance step moves ten points between growth and preservation; cash and protection stay."""
    mix = target_mix(tolerance)  # type: ignore[arg-type]
    assert mix == {"cash": 1_000, "protection": 2_000, "growth": growth, "preservation": preservation}
    assert sum(mix.values()) == 10_000


def test_unknown_tolerance_uses_the_balanced_mix() -> None:
    """Without an assessment the C3 quadrant (10/20/30/40) is the target."""
    assert target_mix(None) == target_mix("C3")


@pytest.mark.parametrize(
    ("persona", "score", "weakest"),
    [
        ("young_professional", 50, "suitability"),
        ("young_family", 84, "allocation"),
        ("affluent", 48, "concentration"),
        ("retiree", 82, "suitability"),
        ("business_owner", 66, "allocation"),
    ],
)
def test_persona_scores(persona: str, score: int, weakest: str) -> None:
    """Each demo persona gets its documented score and weakest part."""
    report = _persona(persona)
    assert (report.score, report.weakest.key) == (score, weakest)


def test_total_is_the_weighted_mean_of_the_parts() -> None:
    """The total is reproducible from the lines shown to the customer."""
    for name in PERSONAS:
        report = _persona(name)
        weight = sum(p.weight for p in report.parts)
        assert weight == sum(WEIGHTS.values()) == 100
        assert report.score == round(sum(p.score * p.weight for p in report.parts) / weight)


def test_every_part_is_explained_in_chinese_and_english() -> None:
    """Each part carries a finding and a recommendation in zh-CN and en."""
    for name in PERSONAS:
        for part in _persona(name).parts:
            assert 0 <= part.score <= 100
            for text in (part.title, part.finding, part.recommendation):
                assert text.zh_CN
                assert text.en


def test_affluent_concentration_and_mismatch_are_found() -> None:
    """A single R5 stock at 66 % of assets scores 0 for concentration and is a suitability mismatch for C4."""
    report = _persona("affluent")
    assert _part(report, "concentration") == 0
    assert report.mismatched == ("STK-TECH",)
    assert "单一科技股" in next(p.finding.zh_CN for p in report.parts if p.key == "concentration")


def test_young_family_holds_nothing_above_tolerance() -> None:
    """A C2 customer holding R1–R2 products has full suitability and no mismatch."""
    report = _persona("young_family")
    assert _part(report, "suitability") == 100
    assert report.mismatched == ()


def test_expired_assessment_caps_suitability() -> None:
    """An expired assessment caps suitability at 50 and says so."""
    holdings = Holdings(
        items=(_holding("BOND", 1_000_000, cls="preservation", risk="R1", ptype="bond_fund"),)
    )
    fresh = check_up(holdings=holdings, accounts=None, risk=_risk("C3"), today=TODAY)
    stale = check_up(
        holdings=holdings, accounts=None, risk=_risk("C3", expires=date(2026, 11, 27)), today=TODAY
    )
    assert fresh is not None
    assert stale is not None
    assert (_part(fresh, "suitability"), _part(stale, "suitability")) == (100, 50)
    assert "过期" in next(p.finding.zh_CN for p in stale.parts if p.key == "suitability")
    # What an expired assessment blocks is everything above R1 (R2 中低风险 too), in both languages.
    advice = next(p.recommendation for p in stale.parts if p.key == "suitability")
    assert "R1以上" in advice.zh_CN
    assert "above R1" in (advice.en or "")


def test_business_owner_has_idle_cash() -> None:
    """Demand deposits beyond six months of spending lower the idle-cash part."""
    report = _persona("business_owner")
    assert _part(report, "idle_cash") == 42
    assert "¥410,000.00" in next(p.finding.zh_CN for p in report.parts if p.key == "idle_cash")


def test_without_accounts_liquidity_and_idle_cash_are_skipped() -> None:
    """No ``accounts:read`` means two parts are listed as skipped and the rest are re-weighted."""
    p = PERSONAS["young_family"]
    report = check_up(holdings=p.holdings, accounts=None, risk=p.risk, today=TODAY)
    assert report is not None
    assert report.skipped == ("liquidity", "idle_cash")
    assert [part.key for part in report.parts] == ["allocation", "concentration", "suitability"]
    assert sum(part.weight for part in report.parts) == 70


def test_no_spending_data_skips_the_parts_that_need_it() -> None:
    """Zero monthly spending cannot be turned into months of cover, so those parts are skipped."""
    holdings = Holdings(items=(_holding("EQ", 100_000),))
    report = check_up(holdings=holdings, accounts=_accounts(500_000, 0), risk=_risk("C3"), today=TODAY)
    assert report is not None
    assert report.skipped == ("liquidity", "idle_cash")


def test_no_assets_means_no_report() -> None:
    """A customer with nothing to assess gets no score rather than a meaningless one."""
    assert check_up(holdings=None, accounts=None, risk=_risk("C3"), today=TODAY) is None
    assert check_up(holdings=Holdings(), accounts=_accounts(0, 100_000), risk=None, today=TODAY) is None


def test_missing_assessment_scores_suitability_as_unknown() -> None:
    """Without a risk profile suitability scores 50 with advice to take the questionnaire; no mismatch."""
    report = check_up(
        holdings=Holdings(items=(_holding("EQ", 100_000, risk="R5"),)), accounts=None, risk=None, today=TODAY
    )
    assert report is not None
    assert _part(report, "suitability") == 50
    assert report.mismatched == ()


@pytest.mark.parametrize(
    ("demand_fen", "liquidity"), [(300_000, 100), (299_999, 100), (297_000, 99), (150_000, 50)]
)
def test_liquidity_boundary_at_three_months(demand_fen: int, liquidity: int) -> None:
    """Three months of spending in ready money scores 100; less scores in proportion."""
    holdings = Holdings(items=(_holding("BOND", 1_000_000, cls="preservation", ptype="bond_fund"),))
    report = check_up(
        holdings=holdings, accounts=_accounts(demand_fen, 100_000), risk=_risk("C3"), today=TODAY
    )
    assert report is not None
    assert _part(report, "liquidity") == liquidity


@pytest.mark.parametrize(("share_fen", "score"), [(2_000, 100), (4_000, 50), (6_000, 0), (8_000, 0)])
def test_concentration_boundaries(share_fen: int, score: int) -> None:
    """One product at 20 % of assets scores 100, at 40 % scores 50, at 60 % or more scores 0."""
    holdings = Holdings(
        items=(
            _holding("BIG", share_fen, issuer="a"),
            _holding("TD", 10_000 - share_fen, cls="preservation", ptype="time_deposit", issuer="bank"),
        )
    )
    report = check_up(holdings=holdings, accounts=None, risk=_risk("C5"), today=TODAY)
    assert report is not None
    assert _part(report, "concentration") == score


def test_issuer_concentration_counts_across_products() -> None:
    """Two products from one issuer are judged together."""
    holdings = Holdings(
        items=(
            _holding("A1", 3_000, issuer="same"),
            _holding("A2", 3_000, issuer="same"),
            _holding("B", 4_000, cls="preservation", issuer="other", ptype="bond_fund"),
        )
    )
    report = check_up(holdings=holdings, accounts=None, risk=_risk("C5"), today=TODAY)
    assert report is not None
    assert _part(report, "concentration") == 0


def test_many_mismatches_stay_within_text_limits() -> None:
    """Ten mismatched products are summarised ("等") so the finding stays a valid display text."""
    holdings = Holdings(
        items=tuple(_holding(f"P{i}" * 20, 10_000, risk="R5", issuer=f"i{i}") for i in range(10))
    )
    report = check_up(holdings=holdings, accounts=None, risk=_risk("C1"), today=TODAY)
    assert report is not None
    finding = next(p.finding for p in report.parts if p.key == "suitability")
    assert "等" in finding.zh_CN
    assert "and others" in (finding.en or "")  # the English list is cut short too, and says so
    assert msgspec.convert(msgspec.to_builtins(finding), LocalizedText) == finding


@pytest.mark.parametrize(
    "values",
    [
        {"cash": 1, "growth": 1, "preservation": 1},  # thirds: 33 + 33 + 33 would show 99 %
        {"cash": 1, "growth": 7},  # eighths: 13 + 88 would show 101 %
        {"cash": 1, "growth": 1, "preservation": 6},
    ],
)
def test_the_mix_and_its_shown_shares_add_up_to_the_whole(values: dict[str, int]) -> None:
    """The mix is a split of the assets: its shares add up to 100 %, in basis points and as shown."""
    holdings = Holdings(
        items=tuple(_holding(cls, fen, cls=cls, risk="R1", issuer=cls) for cls, fen in values.items())
    )
    report = check_up(holdings=holdings, accounts=None, risk=_risk("C3"), today=TODAY)
    assert report is not None
    assert sum(report.mix_bp.values()) == 10_000
    finding = next(p.finding for p in report.parts if p.key == "allocation")
    shown_zh = [int(n) for n in re.findall(r" (\d+)%（目标", finding.zh_CN)]
    shown_en = [int(n) for n in re.findall(r" (\d+)% \(target", finding.en or "")]
    assert len(shown_zh) == 4
    assert sum(shown_zh) == 100
    assert shown_en == shown_zh


def test_the_allocation_score_is_100_minus_the_share_it_says_must_move() -> None:
    """At a half point (26.5 % to move, shown as 27 %) the score is 73, not 74 from rounding to even."""
    values = {"cash": 1_000, "protection": 2_000, "growth": 5_650, "preservation": 1_350}
    holdings = Holdings(
        items=tuple(_holding(cls, fen, cls=cls, risk="R1", issuer=cls) for cls, fen in values.items())
    )
    report = check_up(holdings=holdings, accounts=None, risk=_risk("C3"), today=TODAY)
    assert report is not None
    allocation = next(p for p in report.parts if p.key == "allocation")
    assert "约 27% 的资产需要调整" in allocation.finding.zh_CN
    assert allocation.score == 100 - 27
