"""The coupon catalogue: merchants, cities, discounts, stock, validity windows, per-customer limits.

It is seed data shipped with the plugin (``coupons.toml``), validated by msgspec once as the plugin
loads (``availability`` indexes it by city then); what changes at run time — stock taken, coupons
redeemed — lives in the plugin's storage.
"""

from __future__ import annotations

import functools
from datetime import datetime
from importlib.resources import files
from typing import Annotated, Literal

import msgspec
from fulcrum_sdk import LocalizedText as T

__all__ = ["CATEGORY_NAMES", "CITY_NAMES", "Category", "Coupon", "by_id", "coupons"]

Category = Literal["dining", "coffee", "grocery", "cinema", "travel"]

CATEGORY_NAMES: dict[str, T] = {
    "dining": T(zh_CN="美食", en="dining"),
    "coffee": T(zh_CN="咖啡茶饮", en="coffee and tea"),
    "grocery": T(zh_CN="超市", en="grocery"),
    "cinema": T(zh_CN="电影", en="cinema"),
    "travel": T(zh_CN="出行", en="travel"),
}

CITY_NAMES: dict[str, T] = {
    "440300": T(zh_CN="深圳", en="Shenzhen"),
    "310000": T(zh_CN="上海", en="Shanghai"),
    "510100": T(zh_CN="成都", en="Chengdu"),
}

_Fen = Annotated[int, msgspec.Meta(ge=0)]


class Coupon(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One coupon offer. ``stock`` is the total that may ever be redeemed."""

    id: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}-[A-Z0-9-]{2,24}(?!\n)$")]
    city: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}(?!\n)$")]
    merchant: T
    category: Category
    title: T
    face_value_fen: _Fen
    min_spend_fen: _Fen
    stock: Annotated[int, msgspec.Meta(ge=0)]
    per_customer_limit: Annotated[int, msgspec.Meta(ge=1)]
    valid_from: datetime
    valid_until: datetime
    featured: bool = False

    @property
    def uri(self) -> str:
        """The app deep link that opens the coupon."""
        return f"fulcrum://merchant-promo/coupons/{self.id}"

    @property
    def headline(self) -> T:
        """``湾畔茶饮：满30减10`` — merchant and discount in one line."""
        return T(
            zh_CN=f"{self.merchant.zh_CN}：{self.title.zh_CN}",
            en=f"{self.merchant.en or self.merchant.zh_CN}: {self.title.en or self.title.zh_CN}",
        )


class _Catalogue(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    coupons: tuple[Coupon, ...]


@functools.cache
def coupons() -> tuple[Coupon, ...]:
    """Every coupon in the seeded catalogue (read once; immutable)."""
    raw = files("fulcrum_merchant_promo").joinpath("coupons.toml").read_bytes()
    return msgspec.toml.decode(raw, type=_Catalogue).coupons


def by_id(coupon_id: str) -> Coupon | None:
    """The coupon with ``coupon_id``, or ``None``."""
    return next((c for c in coupons() if c.id == coupon_id), None)
