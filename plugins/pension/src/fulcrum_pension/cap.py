"""The personal pension's annual cap: 12,000 CNY per person per calendar year.

This year's contributions are the provider's figure (what the pension account system reports)
plus the contributions made through this plugin this year, which live in an atomic storage
counter so two requests can never both squeeze under the cap. Display hooks read that counter
with :func:`aroom` (possibly a second old, from the host's cache); the contribution itself reads it
fresh with :func:`room` and is bounded by the atomic ``add``, never by the read.
"""

from __future__ import annotations

import msgspec
from fulcrum_sdk import PluginContext
from fulcrum_sdk.data import PersonalPension
from fulcrum_sdk.localtime import local_date

__all__ = ["ANNUAL_CAP_FEN", "Room", "aroom", "counter_key", "room"]

ANNUAL_CAP_FEN = 1_200_000
"""12,000 CNY in fen."""


class Room(msgspec.Struct, frozen=True, kw_only=True):
    """How much of this year's cap is used and how much is left, in fen."""

    year: int
    provider_fen: int
    recorded_fen: int

    @property
    def used_fen(self) -> int:
        """Contributions counted against this year's cap."""
        return self.provider_fen + self.recorded_fen

    @property
    def left_fen(self) -> int:
        """What may still be contributed this year (never negative)."""
        return max(0, ANNUAL_CAP_FEN - self.used_fen)


def counter_key(customer_id: str, year: int) -> str:
    """The storage counter of contributions made through this plugin in ``year``."""
    return f"contributions:{year}:{customer_id}"


def room(ctx: PluginContext, account: PersonalPension) -> Room:
    """The customer's room under this calendar year's cap (years follow China time)."""
    year = local_date(ctx.now).year
    recorded = ctx.storage.counter(counter_key(ctx.customer.id, year))
    return Room(year=year, provider_fen=account.contributions_this_year_fen, recorded_fen=recorded)


async def aroom(ctx: PluginContext, account: PersonalPension) -> Room:
    """:func:`room` for the ``async`` display hooks."""
    year = local_date(ctx.now).year
    recorded = await ctx.storage.acounter(counter_key(ctx.customer.id, year))
    return Room(year=year, provider_fen=account.contributions_this_year_fen, recorded_fen=recorded)
