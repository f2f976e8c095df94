"""What the assembly modules share: time normalisation, targeting, and the public degraded entry."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime

import msgspec
from fulcrum_sdk._validate import targeting_admits
from fulcrum_sdk.context import Customer
from fulcrum_sdk.models import Targeting

from fulcrum_core.dispatch.results import Degraded, DegradedReason

__all__ = ["DegradedPlugin", "SeenAs", "as_utc", "public_degraded", "targets"]

SeenAs = Callable[[str], Customer]
"""Plugin id → the customer as that plugin sees it. A plugin's targeting is read against what it may
see: a partner the customer has not shared their segment or branch with cannot have its items shown
by them, since a tap on such an item would tell it what the customer did not share."""


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime; a naive one is read as UTC (plugins should send offsets)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def targets(targeting: Targeting | None, customer: Customer) -> bool:
    """True when ``targeting`` (``None`` = everyone) admits the customer: the SDK's rule, which the
    plugin harness applies too."""
    return targeting_admits(targeting, customer)


class DegradedPlugin(msgspec.Struct, frozen=True, kw_only=True):
    """A plugin left out of this response, as clients see it (the failure's detail stays in the logs)."""

    plugin: str
    hook: str
    reason: DegradedReason


def public_degraded(degraded: Iterable[Degraded]) -> list[DegradedPlugin]:
    """The client-facing form of the dispatcher's degraded list."""
    return [DegradedPlugin(plugin=d.plugin, hook=d.hook, reason=d.reason) for d in degraded]
