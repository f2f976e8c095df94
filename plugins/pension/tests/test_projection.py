"""The retirement projection: integer fen, stated assumptions, and who gets none."""

from __future__ import annotations

import msgspec
from fulcrum_pension.projection import Assumptions, project
from fulcrum_sdk.data import PensionAccounts, PersonalPension, SocialSecurity
from fulcrum_sdk.testing import PERSONAS

YP = PERSONAS["young_professional"].pension
assert YP is not None


def test_projection_sums_three_parts_in_fen() -> None:
    """The monthly total is the basic pension, the personal account and the personal pension, all integers."""
    p = project(YP, year=2026, personal_contribution_fen=200_000)
    assert p is not None
    assert (p.retirement_year, p.years_to_retirement) == (2060, 34)
    assert p.monthly_total_fen == p.basic_fen + p.account_fen + p.personal_pension_fen
    assert all(isinstance(v, int) and v > 0 for v in (p.basic_fen, p.account_fen, p.personal_pension_fen))


def test_projection_states_its_assumptions() -> None:
    """The text names retirement age, return, base growth, the excluded housing fund; it is no promise."""
    p = project(YP, year=2026, personal_contribution_fen=200_000)
    assert p is not None
    for fragment in ("63岁退休", "2.5%", "3%", "¥2,000.00", "未计入公积金", "不构成收益承诺"):
        assert fragment in p.assumptions.zh_CN
    assert p.assumptions.en is not None
    assert "not a promise" in p.assumptions.en


def test_contributing_more_raises_the_personal_pension_part() -> None:
    """A larger yearly contribution projects a larger personal pension income, and nothing else changes."""
    low = project(YP, year=2026, personal_contribution_fen=200_000)
    high = project(YP, year=2026, personal_contribution_fen=1_200_000)
    assert low is not None and high is not None  # noqa: PT018 - both must exist before comparing
    assert high.personal_pension_fen > low.personal_pension_fen
    assert (high.basic_fen, high.account_fen) == (low.basic_fen, low.account_fen)


def test_a_later_retirement_age_is_honoured() -> None:
    """Assumptions are parameters: retiring at 65 projects two more years."""
    p = project(YP, year=2026, personal_contribution_fen=0, assumptions=Assumptions(retirement_age=65))
    assert p is not None
    assert p.retirement_year == 2062
    assert "65岁退休" in p.assumptions.zh_CN


def test_retired_customers_get_no_projection() -> None:
    """At or past the retirement age there is nothing to project."""
    retiree = PERSONAS["retiree"].pension
    assert retiree is not None
    assert project(retiree, year=2026, personal_contribution_fen=0) is None
    at_age = msgspec.structs.replace(YP, birth_year=2026 - 63)
    assert project(at_age, year=2026, personal_contribution_fen=0) is None


def test_missing_pillars_project_as_zero() -> None:
    """Without social security or an open personal pension those parts are zero, not errors."""
    bare = PensionAccounts(birth_year=1990)
    p = project(bare, year=2026, personal_contribution_fen=500_000)
    assert p is not None
    assert p.monthly_total_fen == 0
    assert "¥0.00" in p.assumptions.zh_CN  # an unopened account contributes nothing, and says so


def test_social_security_only() -> None:
    """A ¥10,000 base for 30 years, retiring next year: basic pension = base at retirement × years × 1 %."""
    ss = SocialSecurity(
        city="440300",
        balance_fen=0,
        monthly_base_fen=1_000_000,
        months_contributed=360,
        contributions_this_year_fen=0,
    )
    p = project(
        PensionAccounts(
            birth_year=2026 - 62,
            social_security=ss,
            personal_pension=PersonalPension(opened=False, balance_fen=0, contributions_this_year_fen=0),
        ),
        year=2026,
        personal_contribution_fen=0,
    )
    assert p is not None
    assert p.basic_fen == 1_030_000 * 31 // 100  # one more year of base growth and contributions
    assert p.personal_pension_fen == 0
