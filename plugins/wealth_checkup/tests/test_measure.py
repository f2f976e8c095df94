"""The one-pass measure scores every part as the rules say, for any holdings, accounts and risk profile."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fulcrum_sdk import LocalizedText
from fulcrum_sdk.data import Account, Accounts, AssetClass, Holding, Holdings, RiskProfile
from fulcrum_sdk.models import risk_allows
from fulcrum_wealth_checkup import _parts
from fulcrum_wealth_checkup.scoring import check_up, glance
from hypothesis import given, settings
from hypothesis import strategies as st

CLASSES: tuple[AssetClass, ...] = ("cash", "protection", "growth", "preservation")
NAME = LocalizedText(zh_CN="产品", en="A product")


def _bp(part: int, whole: int) -> int:
    return (part * 20_000 + whole) // (2 * whole)


def _pct(bp: int) -> int:
    return (bp + 50) // 100


def _clamp(score: float) -> int:
    return max(0, min(100, round(score)))


def _reference(
    holdings: Holdings | None, accounts: Accounts | None, risk: RiskProfile | None, today: date
) -> tuple[dict[str, int], int, dict[AssetClass, int], tuple[str, ...]] | None:
    """The part scores, total, mix and mismatches written out plainly, one rule at a time, as the
    check-up computed them before its one-pass measure."""
    items = holdings.items if holdings else ()
    by_class = dict.fromkeys(CLASSES, 0)
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
    total = sum(by_class.values())
    if total <= 0:
        return None
    target = _parts.target_mix(risk.tolerance if risk else None)
    # largest remainder: whole basis points adding up to 10 000, ties to the first class
    floors = {c: by_class[c] * 10_000 // total for c in CLASSES}
    rests = {c: by_class[c] * 10_000 % total for c in CLASSES}
    by_rest = sorted(CLASSES, key=lambda c: -rests[c])
    mix = {c: floors[c] + int(c in by_rest[: 10_000 - sum(floors.values())]) for c in CLASSES}
    scores = {"allocation": max(0, 100 - _pct(sum(abs(mix[c] - target[c]) for c in CLASSES) // 2))}
    invested = [h for h in items if h.product_type != "time_deposit"]
    if invested:
        issuers: dict[str, int] = {}
        for h in invested:
            issuers[h.issuer] = issuers.get(h.issuer, 0) + h.market_value_fen
        top = max(h.market_value_fen for h in invested)
        worst = max(_bp(top, total), _bp(max(issuers.values()), total))
        scores["concentration"] = _clamp(100 * (6_000 - worst) / 4_000)
    else:
        scores["concentration"] = 100
    if spending is not None:
        cash = by_class["cash"]
        scores["liquidity"] = 100 if cash * 10 // spending >= 30 else _clamp(100 * cash / (3 * spending))
    above = [h for h in items if risk and not risk_allows(risk.tolerance, h.risk_level)]
    if risk is None:
        scores["suitability"] = 50
    else:
        share = _pct(_bp(sum(h.market_value_fen for h in above), total))
        scores["suitability"] = max(0, 50 - share) if above else 100
        if risk.is_expired(today):
            scores["suitability"] = min(scores["suitability"], 50)
    if spending is not None:
        idle = max(0, demand - 6 * spending)
        scores["idle_cash"] = _clamp(100 - 2 * _pct(_bp(idle, total))) if idle else 100
    return scores, total, mix, tuple(h.product_id for h in above)


_holdings = st.lists(
    st.builds(
        Holding,
        product_id=st.sampled_from(["P1", "P2", "P3", "P4"]),
        name=st.just(NAME),
        issuer=st.sampled_from(["A", "B", "C"]),
        product_type=st.sampled_from(["wealth_product", "equity_fund", "stock", "time_deposit", "insurance"]),
        asset_class=st.sampled_from(CLASSES),
        risk_level=st.sampled_from(["R1", "R2", "R3", "R4", "R5"]),
        market_value_fen=st.one_of(st.sampled_from([0, 1, 100_000_00]), st.integers(0, 10**10)),
    ),
    max_size=7,
).map(lambda items: Holdings(items=tuple(items)))
_accounts = st.builds(
    Accounts,
    items=st.lists(
        st.builds(
            Account,
            id=st.just("a"),
            kind=st.sampled_from(["demand", "time_deposit", "credit_card"]),
            name=st.just(NAME),
            balance_fen=st.one_of(st.sampled_from([0, 1, 50_000_00]), st.integers(0, 10**9)),
        ),
        max_size=4,
    ).map(tuple),
    monthly_spending_fen=st.one_of(st.sampled_from([0, 1, 10_000_00]), st.integers(0, 10**8)),
)
_risk = st.builds(
    RiskProfile,
    tolerance=st.sampled_from(["C1", "C2", "C3", "C4", "C5"]),
    assessed_on=st.just(date(2025, 1, 1)),
    expires_on=st.sampled_from([date(2026, 11, 27), date(2026, 11, 28), date(2026, 11, 29)]),
)


@settings(max_examples=400, deadline=None)
@given(holdings=st.none() | _holdings, accounts=st.none() | _accounts, risk=st.none() | _risk)
def test_measure_agrees_with_the_rules_written_out(
    holdings: Holdings | None, accounts: Accounts | None, risk: RiskProfile | None
) -> None:
    """Scores, total, mix and mismatches of the one-pass measure equal the plainly written rules, and
    the glance and the full report agree on them."""
    today = date(2026, 11, 28)
    expected = _reference(holdings, accounts, risk, today)
    found = _parts.measure(holdings, accounts, risk, today)
    if expected is None:
        assert found is None
        assert glance(holdings=holdings, accounts=accounts, risk=risk, today=today) is None
        return
    assert found is not None
    parts, total, mix, _, mismatched = found
    assert {key: score for key, (score, _) in parts.items()} == expected[0]
    assert list(parts) == list(expected[0])  # report order
    assert (total, mix, mismatched) == expected[1:]
    report = check_up(holdings=holdings, accounts=accounts, risk=risk, today=today)
    assert report is not None
    assert {p.key: p.score for p in report.parts} == expected[0]


def test_an_unknown_asset_class_is_refused_as_before() -> None:
    """A holding of a class the check-up does not know is an error, not silently counted."""
    odd: Any = "real_estate"
    holding = Holding(
        product_id="X", name=NAME, issuer="A", product_type="stock", asset_class=odd, risk_level="R1",
        market_value_fen=1,
    )
    with pytest.raises(KeyError, match="real_estate"):
        _parts.measure(Holdings(items=(holding,)), None, None, date(2026, 11, 28))


@given(
    amounts=st.lists(st.one_of(st.integers(0, 3), st.integers(0, 10**12)), max_size=8),
    units=st.sampled_from([1, 7, 100, 10_000]),
)
def test_apportion_is_largest_remainder_with_ties_to_the_first(amounts: list[int], units: int) -> None:
    """Whole shares adding up to ``units``: the floors, plus one each for the largest remainders,
    the first of equal remainders first."""
    shares = _parts._apportion(amounts, units)
    whole = sum(amounts)
    if whole == 0:
        assert shares == [0] * len(amounts)
        return
    floors = [a * units // whole for a in amounts]
    by_rest = sorted(range(len(amounts)), key=lambda i: -(amounts[i] * units % whole))
    bumped = set(by_rest[: units - sum(floors)])
    assert shares == [f + (i in bumped) for i, f in enumerate(floors)]
    assert sum(shares) == units
