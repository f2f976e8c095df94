"""The customer's pension accounts and cap room for the display hooks (scoped data + cached storage)."""

from __future__ import annotations

import msgspec
from fulcrum_sdk import PluginContext
from fulcrum_sdk.data import PensionAccounts

from fulcrum_pension.cap import Room, aroom

__all__ = ["Snapshot", "snapshot"]


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Pension data for one request; ``room`` is ``None`` when no personal pension account is open."""

    pension: PensionAccounts
    room: Room | None


async def snapshot(ctx: PluginContext) -> Snapshot | None:
    """The accounts and cap room, or ``None`` without ``pension:read`` or without a pension record."""
    if not ctx.data.allows("pension:read"):
        return None
    pension = ctx.data.pension()
    if pension is None:
        return None
    pp = pension.personal_pension
    return Snapshot(pension=pension, room=await aroom(ctx, pp) if pp is not None and pp.opened else None)
