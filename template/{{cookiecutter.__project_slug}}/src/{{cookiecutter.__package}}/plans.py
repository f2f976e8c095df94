"""The service plans customers can find and order: an example catalogue, to replace with yours.

Prices are integer fen (分), never floats; stock is the most that may ever be sold of a plan.
"""

from __future__ import annotations

import msgspec
from fulcrum_sdk import LocalizedText as T
from fulcrum_sdk.money import yuan  # ¥1,234.56, and -¥12.34 for a negative amount

from {{ cookiecutter.__package }}._about import PLUGIN_ID

__all__ = ["PLANS", "Plan", "yuan"]


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """A service plan: its name, its price in fen and its stock."""

    id: str
    name: T
    price_fen: int
    stock: int

    @property
    def uri(self) -> str:
        """The deep link to the plan's page."""
        return f"fulcrum://{PLUGIN_ID}/plans/{self.id}"

    @property
    def sold_key(self) -> str:
        """The storage counter of how many of the plan were sold (bounded by ``stock``)."""
        return f"sold:{self.id}"


PLANS: dict[str, Plan] = {
    p.id: p
    for p in (
        Plan(id="starter", name=T(zh_CN="入门套餐", en="Starter plan"), price_fen=990, stock=1000),
        Plan(id="family", name=T(zh_CN="家庭套餐", en="Family plan"), price_fen=2990, stock=200),
    )
}

