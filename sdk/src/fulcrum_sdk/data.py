"""Customer data as plugins see it, and the ``DataProvider`` protocol the bank's systems implement.

Plugins never call a provider directly: they go through :class:`fulcrum_sdk.context.ScopedData`,
which checks the plugin's granted scopes (and, for partners, the customer's consent) first.
"""

from __future__ import annotations

from datetime import date
from typing import Literal, Protocol

import msgspec

from fulcrum_sdk.models import LocalizedText, RiskLevel, RiskTolerance

__all__ = [
    "Account",
    "Accounts",
    "AssetClass",
    "City",
    "CustomerRecord",
    "DataProvider",
    "Holding",
    "Holdings",
    "HousingFund",
    "PensionAccounts",
    "PersonalPension",
    "Profile",
    "RiskProfile",
    "SocialSecurity",
    "StaticDataProvider",
]

AssetClass = Literal["cash", "protection", "growth", "preservation"]
"""The four-part household allocation: 活钱 cash, 保障 protection, 生钱 growth, 保值 preservation."""


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """``profile:basic`` — who the customer is, coarsely."""

    segment: str
    branch: str
    locale: str = "zh-CN"


class RiskProfile(msgspec.Struct, frozen=True, kw_only=True):
    """``profile:risk`` — the questionnaire result and its validity."""

    tolerance: RiskTolerance
    assessed_on: date
    expires_on: date

    def is_expired(self, today: date) -> bool:
        """An expired assessment blocks purchases of risky products until it is redone."""
        return today > self.expires_on


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """One deposit or card account. ``id`` is the bank's account id for an internal plugin, and for a
    partner an id of its own (stable for it and the customer): the bank's names the customer."""

    id: str
    kind: Literal["demand", "time_deposit", "credit_card"]
    name: LocalizedText
    balance_fen: int


class Accounts(msgspec.Struct, frozen=True, kw_only=True):
    """``accounts:read`` — balances and average monthly cash flow over the last six months."""

    items: tuple[Account, ...] = ()
    monthly_income_fen: int = 0
    monthly_spending_fen: int = 0


class Holding(msgspec.Struct, frozen=True, kw_only=True):
    """One position in a wealth, fund, insurance or deposit product."""

    product_id: str
    name: LocalizedText
    issuer: str
    product_type: Literal[
        "money_market_fund",
        "wealth_product",
        "bond_fund",
        "equity_fund",
        "stock",
        "insurance",
        "time_deposit",
    ]
    asset_class: AssetClass
    risk_level: RiskLevel
    market_value_fen: int


class Holdings(msgspec.Struct, frozen=True, kw_only=True):
    """``holdings:read`` — every position the customer holds at the bank."""

    items: tuple[Holding, ...] = ()


class SocialSecurity(msgspec.Struct, frozen=True, kw_only=True):
    """Basic pension insurance (社保): employee 8 %, employer 16 % of the monthly base."""

    city: str
    balance_fen: int
    monthly_base_fen: int
    months_contributed: int
    contributions_this_year_fen: int


class HousingFund(msgspec.Struct, frozen=True, kw_only=True):
    """Housing provident fund (公积金): employee and employer each 5–12 % of the monthly base."""

    balance_fen: int
    monthly_base_fen: int
    employee_rate_pct: int
    employer_rate_pct: int
    contributions_this_year_fen: int


class PersonalPension(msgspec.Struct, frozen=True, kw_only=True):
    """Personal pension account (个人养老金): capped at 12,000 CNY of contributions per calendar year."""

    opened: bool
    balance_fen: int
    contributions_this_year_fen: int


class PensionAccounts(msgspec.Struct, frozen=True, kw_only=True):
    """``pension:read`` — the three pension pillars and what a projection needs."""

    birth_year: int
    social_security: SocialSecurity | None = None
    housing_fund: HousingFund | None = None
    personal_pension: PersonalPension | None = None


class City(msgspec.Struct, frozen=True, kw_only=True):
    """``location:city`` — the customer's city: administrative code and name."""

    code: str
    name: LocalizedText


class DataProvider(Protocol):
    """The bank's systems, keyed by the bank's own customer id. Each method returns ``None``
    when the customer has no such data. Implementations must be safe to call from worker threads.

    A provider whose methods do I/O sets a class attribute ``blocking = True``: the host then never
    calls it on its event loop, but reads each request's records in a worker thread before the
    plugins run, within a time budget (``DataUnavailable`` for a record that did not arrive).
    In-memory providers need nothing.
    """

    def profile(self, customer_id: str) -> Profile | None: ...
    def risk(self, customer_id: str) -> RiskProfile | None: ...
    def accounts(self, customer_id: str) -> Accounts | None: ...
    def holdings(self, customer_id: str) -> Holdings | None: ...
    def pension(self, customer_id: str) -> PensionAccounts | None: ...
    def city(self, customer_id: str) -> City | None: ...


class CustomerRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a provider knows of one customer, for providers that hold data in memory."""

    id: str
    name: str
    persona: str
    profile: Profile
    risk: RiskProfile | None = None
    accounts: Accounts | None = None
    holdings: Holdings | None = None
    pension: PensionAccounts | None = None
    city: City | None = None


class StaticDataProvider:
    """A :class:`DataProvider` over a fixed set of :class:`CustomerRecord` (tests, harness, demo)."""

    def __init__(self, records: dict[str, CustomerRecord]) -> None:
        self.records = records

    def profile(self, customer_id: str) -> Profile | None:
        r = self.records.get(customer_id)
        return r.profile if r else None

    def risk(self, customer_id: str) -> RiskProfile | None:
        r = self.records.get(customer_id)
        return r.risk if r else None

    def accounts(self, customer_id: str) -> Accounts | None:
        r = self.records.get(customer_id)
        return r.accounts if r else None

    def holdings(self, customer_id: str) -> Holdings | None:
        r = self.records.get(customer_id)
        return r.holdings if r else None

    def pension(self, customer_id: str) -> PensionAccounts | None:
        r = self.records.get(customer_id)
        return r.pension if r else None

    def city(self, customer_id: str) -> City | None:
        r = self.records.get(customer_id)
        return r.city if r else None
