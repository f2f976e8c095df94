"""A retirement-income projection that states its assumptions, in integer fen.

Monthly income at retirement is the sum of three parts:

- basic pension (基础养老金): the contribution base at retirement × years contributed × 1 %;
- social-security personal account (个人账户): the balance grown at the assumed return with 8 % of
  the base added each year, divided by the statutory payout months for the retirement age;
- personal pension (个人养老金): the balance grown with this year's contribution repeated each year,
  drawn over the assumed number of months.

The housing fund is not retirement income and is left out. It is a projection, not a promise.
"""

from __future__ import annotations

import msgspec
from fulcrum_sdk import LocalizedText
from fulcrum_sdk.data import PensionAccounts
from fulcrum_sdk.money import yuan

__all__ = ["Assumptions", "Projection", "project"]

_EMPLOYEE_RATE_PCT = 8  # employee contribution to the personal account, % of the base


class Assumptions(msgspec.Struct, frozen=True, kw_only=True):
    """What the projection assumes; shown to the customer next to the number."""

    retirement_age: int = 63
    annual_return_bp: int = 250
    base_growth_bp: int = 300
    account_payout_months: int = 117
    """Statutory payout months (计发月数) of the personal account when retiring at 63."""
    personal_pension_payout_months: int = 240

    def describe(self, personal_contribution_fen: int) -> LocalizedText:
        """The assumptions in one short paragraph."""
        r, g = f"{self.annual_return_bp / 100:g}", f"{self.base_growth_bp / 100:g}"
        years = self.personal_pension_payout_months // 12
        return LocalizedText(
            zh_CN=(
                f"假设：{self.retirement_age}岁退休；账户年化收益{r}%；缴费基数每年增长{g}%；"
                f"个人养老金每年按今年缴存额{yuan(personal_contribution_fen)}继续缴存，退休后分{years}年领取；"
                f"基础养老金按缴费基数×缴费年限×1%估算；未计入公积金；为名义金额，未扣除通胀。仅供参考，不构成收益承诺。"
            ),
            en=(
                f"Assumes retirement at {self.retirement_age}, {r}% annual return, "
                f"the contribution base growing {g}% a year, this year's personal pension contribution "
                f"({yuan(personal_contribution_fen)}) repeated yearly and drawn over {years} years, "
                "a basic pension of base × years × 1%; "
                f"housing fund excluded; nominal, before inflation. An estimate, not a promise."
            ),
        )


class Projection(msgspec.Struct, frozen=True, kw_only=True):
    """Estimated monthly income at retirement, by part, in fen."""

    retirement_year: int
    years_to_retirement: int
    basic_fen: int
    account_fen: int
    personal_pension_fen: int
    assumptions: LocalizedText

    @property
    def monthly_total_fen(self) -> int:
        """The three parts together."""
        return self.basic_fen + self.account_fen + self.personal_pension_fen


def _grow(balance: int, bp: int) -> int:
    return balance * (10_000 + bp) // 10_000


def project(
    pension: PensionAccounts,
    *,
    year: int,
    personal_contribution_fen: int,
    assumptions: Assumptions | None = None,
) -> Projection | None:
    """Project monthly income at retirement; ``None`` when the customer is already at retirement age.

    ``personal_contribution_fen`` is this year's personal pension contribution, assumed repeated.
    """
    a = assumptions or Assumptions()
    years = a.retirement_age - (year - pension.birth_year)
    if years <= 0:
        return None
    basic = account_income = 0
    ss = pension.social_security
    if ss is not None:
        base, account, months = ss.monthly_base_fen, ss.balance_fen, ss.months_contributed
        for _ in range(years):
            account = _grow(account, a.annual_return_bp) + base * _EMPLOYEE_RATE_PCT * 12 // 100
            base = _grow(base, a.base_growth_bp)
            months += 12
        basic = base * (months // 12) // 100
        account_income = account // a.account_payout_months
    personal = 0
    pp = pension.personal_pension
    if pp is not None and pp.opened:
        balance = pp.balance_fen
        for _ in range(years):
            balance = _grow(balance, a.annual_return_bp) + personal_contribution_fen
        personal = balance // a.personal_pension_payout_months
    else:
        personal_contribution_fen = 0
    return Projection(
        retirement_year=year + years,
        years_to_retirement=years,
        basic_fen=basic,
        account_fen=account_income,
        personal_pension_fen=personal,
        assumptions=a.describe(personal_contribution_fen),
    )
