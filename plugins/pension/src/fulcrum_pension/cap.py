"""The personal pension's annual cap: 12,000 CNY per person per calendar year.

Two sources count against the cap. The provider's figure is what the pension account system has
booked this year, from every channel; the plugin's storage counter holds what was contributed through
it this year, atomically bounded so two requests can never both squeeze under the cap. The bank books
a contribution made here sooner or later, and then it is in both: so the plugin also keeps the
provider's figure as it was at the year's first contribution here (the *baseline*), and counts

    used = max(provider figure now, baseline + contributed here)

Before the bank books ours, the second term is the larger; once it has, the first (which also has any
contribution made elsewhere). Whenever the first is the larger at a contribution here, the baseline
moves up to the provider's figure less what was contributed here, so the contribution counts at once
instead of hiding behind what was paid elsewhere. A contribution made elsewhere while one of ours is
still unbooked is counted late; the pension account system is the last word on the cap when it books.

Display hooks read both counters with :func:`aroom` (possibly a second old, from the host's cache);
the contribution itself reads them fresh with :func:`room` and is bounded by the atomic ``add``.
"""

from __future__ import annotations

import msgspec
from fulcrum_sdk import PluginContext
from fulcrum_sdk.data import PersonalPension
from fulcrum_sdk.errors import LimitExceeded
from fulcrum_sdk.localtime import local_date

__all__ = ["ANNUAL_CAP_FEN", "Room", "aroom", "baseline_key", "counter_key", "keep_baseline", "room"]

ANNUAL_CAP_FEN = 1_200_000
"""12,000 CNY in fen."""


class Room(msgspec.Struct, frozen=True, kw_only=True):
    """How much of this year's cap is used and how much is left, in fen."""

    year: int
    provider_fen: int
    recorded_fen: int
    baseline_fen: int | None = None
    """The provider's figure at the year's first contribution here; ``None`` before one."""

    @property
    def used_fen(self) -> int:
        """Contributions counted against this year's cap (see the module's docstring)."""
        if self.baseline_fen is None:
            return self.provider_fen + self.recorded_fen
        return max(self.provider_fen, self.baseline_fen + self.recorded_fen)

    @property
    def unbooked_fen(self) -> int:
        """Contributions made here that the provider's figure does not show yet."""
        return self.used_fen - self.provider_fen

    @property
    def left_fen(self) -> int:
        """What may still be contributed this year (never negative)."""
        return max(0, ANNUAL_CAP_FEN - self.used_fen)


def counter_key(customer_id: str, year: int) -> str:
    """The storage counter of contributions made through this plugin in ``year``."""
    return f"contributions:{year}:{customer_id}"


def baseline_key(customer_id: str, year: int) -> str:
    """The storage counter holding the provider's figure at the first contribution of ``year``, plus one
    (zero means none was made yet, even when the figure was zero)."""
    return f"baseline:{year}:{customer_id}"


def keep_baseline(ctx: PluginContext, account: PersonalPension) -> Room:
    """Record the provider's figure before the year's first contribution here; before a later one, move
    the baseline up to the provider's figure less what was contributed here, when the figure has passed
    baseline + contributed here (see the module): the excess was paid elsewhere and is booked, and a
    contribution made here next must count at once, not hide behind it until the bank books it.

    Returns :func:`room` with that baseline (the counters read fresh, once)."""
    year = local_date(ctx.now).year
    keys = [counter_key(ctx.customer.id, year), baseline_key(ctx.customer.id, year)]
    counts = ctx.storage.counters(keys)
    recorded, mark = counts[keys[0]], counts[keys[1]]
    # Without a baseline yet, counters written before the baseline existed stay on top of the figure.
    target = account.contributions_this_year_fen + 1 - (recorded if mark else 0)
    if target > mark:
        try:
            mark = ctx.storage.add(keys[1], target - mark, upper=target)
        except LimitExceeded as exc:  # a concurrent contribution moved it first
            mark = exc.current
    return _room(year, account, recorded, mark)


def _room(year: int, account: PersonalPension, recorded: int, mark: int) -> Room:
    return Room(
        year=year, provider_fen=account.contributions_this_year_fen, recorded_fen=recorded,
        baseline_fen=mark - 1 if mark else None,
    )


def room(ctx: PluginContext, account: PersonalPension) -> Room:
    """The customer's room under this calendar year's cap (years follow China time)."""
    year = local_date(ctx.now).year
    keys = [counter_key(ctx.customer.id, year), baseline_key(ctx.customer.id, year)]
    counts = ctx.storage.counters(keys)
    return _room(year, account, counts[keys[0]], counts[keys[1]])


async def aroom(ctx: PluginContext, account: PersonalPension, *, year: int | None = None) -> Room:
    """:func:`room` for the ``async`` display hooks (one read for both counters); ``year`` is this year
    in China when the caller has it already (the home hook reads the calendar once)."""
    if year is None:
        year = local_date(ctx.now).year
    keys = [counter_key(ctx.customer.id, year), baseline_key(ctx.customer.id, year)]
    counts = await ctx.storage.acounters(keys)
    return _room(year, account, counts[keys[0]], counts[keys[1]])
