"""The wealth products this plugin may sell through a rebalancing order, with their purchase rules.

A real deployment would read the listed products from the wealth department's product system; here
the catalogue is seed data shipped with the plugin (``products.toml``), validated on first use.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import date
from importlib.resources import files
from types import MappingProxyType
from typing import Annotated

import msgspec
from fulcrum_sdk import LocalizedText
from fulcrum_sdk.data import AssetClass
from fulcrum_sdk.models import RiskLevel
from fulcrum_sdk.money import yuan

__all__ = ["Product", "product", "products"]

_PositiveFen = Annotated[int, msgspec.Meta(gt=0)]


class Product(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A listed product: who issues it, what part of the mix it fills, and how it may be bought."""

    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9-]{3,32}(?!\n)$")]
    name: LocalizedText
    issuer: str
    asset_class: AssetClass
    risk_level: RiskLevel
    min_purchase_fen: _PositiveFen
    step_fen: _PositiveFen
    sale_until: date | None = None
    pitch: LocalizedText

    @property
    def uri(self) -> str:
        """The deep link to the product's page."""
        return f"fulcrum://wealth-checkup/products/{self.id}"

    def on_sale(self, today: date) -> bool:
        """True while the product's sale window is open on ``today`` (China date)."""
        return self.sale_until is None or today <= self.sale_until

    def purchase_problem(self, amount_fen: int) -> str | None:
        """Why ``amount_fen`` is not a valid purchase of this product, or ``None`` when it is."""
        if amount_fen < self.min_purchase_fen:
            return f"the minimum purchase of {self.id} is {yuan(self.min_purchase_fen)}"
        if (amount_fen - self.min_purchase_fen) % self.step_fen:
            return (
                f"{self.id} is bought in steps of {yuan(self.step_fen)} above the minimum "
                f"{yuan(self.min_purchase_fen)}"
            )
        return None


class _Catalogue(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    products: tuple[Product, ...]


@functools.cache
def products() -> Mapping[str, Product]:
    """Every listed product by id, read once; a read-only mapping."""
    raw = files("fulcrum_wealth_checkup").joinpath("products.toml").read_bytes()
    return MappingProxyType({p.id: p for p in msgspec.toml.decode(raw, type=_Catalogue).products})


def product(product_id: str) -> Product | None:
    """The listed product with ``product_id``, or ``None``."""
    return products().get(product_id)
