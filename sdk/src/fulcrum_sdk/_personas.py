"""Five synthetic customers, one per demo persona, for the test harness and the conformance kit."""

from __future__ import annotations

from datetime import date

import msgspec

from fulcrum_sdk.data import (
    Account,
    Accounts,
    City,
    CustomerRecord,
    Holding,
    Holdings,
    HousingFund,
    PensionAccounts,
    PersonalPension,
    Profile,
    RiskProfile,
    SocialSecurity,
)
from fulcrum_sdk.models import LocalizedText as T

__all__ = ["PERSONAS"]

_SZ = City(code="440300", name=T(zh_CN="深圳", en="Shenzhen"))
_SH = City(code="310000", name=T(zh_CN="上海", en="Shanghai"))
_CD = City(code="510100", name=T(zh_CN="成都", en="Chengdu"))


def _risk(level: str, expires: date = date(2027, 6, 30)) -> RiskProfile:
    return RiskProfile(tolerance=level, assessed_on=date(2025, 7, 1), expires_on=expires)  # type: ignore[arg-type]


def _demand(balance_fen: int) -> Account:
    return Account(
        id="acct-demand",
        kind="demand",
        name=T(zh_CN="活期账户", en="Current account"),
        balance_fen=balance_fen,
    )


def _h(pid: str, zh: str, en: str, issuer: str, ptype: str, cls: str, risk: str, fen: int) -> Holding:
    # Positional shorthand for the table below; msgspec.convert checks the literal fields.
    return msgspec.convert(
        {
            "product_id": pid,
            "name": {"zh-CN": zh, "en": en},
            "issuer": issuer,
            "product_type": ptype,
            "asset_class": cls,
            "risk_level": risk,
            "market_value_fen": fen,
        },
        Holding,
    )


PERSONAS: dict[str, CustomerRecord] = {
    "young_professional": CustomerRecord(
        id="synthetic-young-professional",
        name="Synthetic Young Professional",
        persona="young_professional",
        profile=Profile(segment="mass", branch="0755"),
        risk=_risk("C3"),
        accounts=Accounts(
            items=(_demand(1_850_000),), monthly_income_fen=2_200_000, monthly_spending_fen=1_600_000
        ),
        holdings=Holdings(
            items=(
                _h(
                    "MMF-001",
                    "天天宝货币基金",
                    "Daily Money Fund",
                    "fund-a",
                    "money_market_fund",
                    "cash",
                    "R1",
                    600_000,
                ),
                _h(
                    "EQF-310",
                    "科技成长混合",
                    "Tech Growth Fund",
                    "fund-b",
                    "equity_fund",
                    "growth",
                    "R4",
                    1_200_000,
                ),
            )
        ),
        pension=PensionAccounts(
            birth_year=1997,
            social_security=SocialSecurity(
                city="440300",
                balance_fen=4_800_000,
                monthly_base_fen=1_500_000,
                months_contributed=48,
                contributions_this_year_fen=1_320_000,
            ),
            housing_fund=HousingFund(
                balance_fen=6_500_000,
                monthly_base_fen=1_500_000,
                employee_rate_pct=12,
                employer_rate_pct=12,
                contributions_this_year_fen=3_960_000,
            ),
            personal_pension=PersonalPension(
                opened=True, balance_fen=200_000, contributions_this_year_fen=200_000
            ),
        ),
        city=_SZ,
    ),
    "young_family": CustomerRecord(
        id="synthetic-young-family",
        name="Synthetic Young Family",
        persona="young_family",
        profile=Profile(segment="mass", branch="021"),
        risk=_risk("C2"),
        accounts=Accounts(
            items=(_demand(6_300_000),), monthly_income_fen=3_500_000, monthly_spending_fen=2_100_000
        ),
        holdings=Holdings(
            items=(
                _h(
                    "TD-3Y",
                    "三年期定期存款",
                    "3-year time deposit",
                    "bank",
                    "time_deposit",
                    "preservation",
                    "R1",
                    20_000_000,
                ),
                _h(
                    "WP-FIX-90",
                    "稳享90天理财",
                    "Steady 90-day product",
                    "wm-sub",
                    "wealth_product",
                    "preservation",
                    "R2",
                    10_000_000,
                ),
                _h(
                    "INS-TERM",
                    "定期寿险",
                    "Term life insurance",
                    "insurer-a",
                    "insurance",
                    "protection",
                    "R1",
                    1_500_000,
                ),
            )
        ),
        pension=PensionAccounts(
            birth_year=1990,
            social_security=SocialSecurity(
                city="310000",
                balance_fen=12_600_000,
                monthly_base_fen=2_500_000,
                months_contributed=120,
                contributions_this_year_fen=2_200_000,
            ),
            housing_fund=HousingFund(
                balance_fen=21_000_000,
                monthly_base_fen=2_500_000,
                employee_rate_pct=7,
                employer_rate_pct=7,
                contributions_this_year_fen=3_850_000,
            ),
            personal_pension=PersonalPension(
                opened=True, balance_fen=2_400_000, contributions_this_year_fen=600_000
            ),
        ),
        city=_SH,
    ),
    "affluent": CustomerRecord(
        id="synthetic-affluent",
        name="Synthetic Affluent Professional",
        persona="affluent",
        profile=Profile(segment="affluent", branch="0755"),
        risk=_risk("C4"),
        accounts=Accounts(
            items=(_demand(42_000_000),), monthly_income_fen=8_000_000, monthly_spending_fen=3_500_000
        ),
        holdings=Holdings(
            items=(
                _h(
                    "STK-TECH",
                    "单一科技股",
                    "Single tech stock",
                    "listed-co",
                    "stock",
                    "growth",
                    "R5",
                    180_000_000,
                ),
                _h(
                    "EQF-310",
                    "科技成长混合",
                    "Tech Growth Fund",
                    "fund-b",
                    "equity_fund",
                    "growth",
                    "R4",
                    30_000_000,
                ),
                _h(
                    "WP-FIX-90",
                    "稳享90天理财",
                    "Steady 90-day product",
                    "wm-sub",
                    "wealth_product",
                    "preservation",
                    "R2",
                    20_000_000,
                ),
            )
        ),
        pension=PensionAccounts(
            birth_year=1982,
            social_security=SocialSecurity(
                city="440300",
                balance_fen=38_000_000,
                monthly_base_fen=3_600_000,
                months_contributed=216,
                contributions_this_year_fen=3_168_000,
            ),
            personal_pension=PersonalPension(
                opened=True, balance_fen=3_600_000, contributions_this_year_fen=1_200_000
            ),
        ),
        city=_SZ,
    ),
    "retiree": CustomerRecord(
        id="synthetic-retiree",
        name="Synthetic Retiree",
        persona="retiree",
        profile=Profile(segment="mass", branch="028"),
        risk=_risk("C1", expires=date(2025, 12, 31)),
        accounts=Accounts(
            items=(_demand(8_000_000),), monthly_income_fen=650_000, monthly_spending_fen=450_000
        ),
        holdings=Holdings(
            items=(
                _h(
                    "TD-5Y",
                    "五年期定期存款",
                    "5-year time deposit",
                    "bank",
                    "time_deposit",
                    "preservation",
                    "R1",
                    60_000_000,
                ),
                _h(
                    "EQF-310",
                    "科技成长混合",
                    "Tech Growth Fund",
                    "fund-b",
                    "equity_fund",
                    "growth",
                    "R4",
                    5_000_000,
                ),
            )
        ),
        pension=PensionAccounts(
            birth_year=1960,
            social_security=SocialSecurity(
                city="510100",
                balance_fen=0,
                monthly_base_fen=0,
                months_contributed=420,
                contributions_this_year_fen=0,
            ),
        ),
        city=_CD,
    ),
    "business_owner": CustomerRecord(
        id="synthetic-business-owner",
        name="Synthetic Business Owner",
        persona="business_owner",
        profile=Profile(segment="affluent", branch="021"),
        risk=_risk("C4"),
        accounts=Accounts(
            items=(_demand(95_000_000),), monthly_income_fen=12_000_000, monthly_spending_fen=9_000_000
        ),
        holdings=Holdings(
            items=(
                _h(
                    "MMF-001",
                    "天天宝货币基金",
                    "Daily Money Fund",
                    "fund-a",
                    "money_market_fund",
                    "cash",
                    "R1",
                    30_000_000,
                ),
                _h(
                    "BDF-220",
                    "纯债增强",
                    "Enhanced Bond Fund",
                    "fund-c",
                    "bond_fund",
                    "preservation",
                    "R2",
                    15_000_000,
                ),
            )
        ),
        pension=PensionAccounts(
            birth_year=1978,
            social_security=SocialSecurity(
                city="310000",
                balance_fen=9_000_000,
                monthly_base_fen=700_000,
                months_contributed=150,
                contributions_this_year_fen=616_000,
            ),
            personal_pension=PersonalPension(opened=False, balance_fen=0, contributions_this_year_fen=0),
        ),
        city=_SH,
    ),
}
