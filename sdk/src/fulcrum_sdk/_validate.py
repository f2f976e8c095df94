"""Checking what a plugin's hook returned, shared by the host's dispatcher and the test harness."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeVar

import msgspec

from fulcrum_sdk.models import FeedItem, SearchHit, SlotOffer, TransactionResult

__all__ = ["LIST_RESULT_TYPES", "ResultError", "check_list", "check_transaction_result"]

_S = TypeVar("_S", bound=msgspec.Struct)

LIST_RESULT_TYPES: dict[str, type[msgspec.Struct]] = {
    "home_slot_offers": SlotOffer,
    "search": SearchHit,
    "feed_items": FeedItem,
}


class ResultError(ValueError):
    """A hook returned something other than its documented shape."""


def _revalidate(item: _S, cls: type[_S]) -> _S:
    # Struct constructors do not check Meta constraints; a round trip through builtins does.
    return msgspec.convert(
        msgspec.to_builtins(item, builtin_types=(datetime, date)), cls, builtin_types=(datetime, date)
    )


def check_list(hook: str, value: Any, *, max_items: int = 50) -> list[Any]:
    """Return ``value`` as a validated list of the hook's result type, or raise :class:`ResultError`."""
    cls = LIST_RESULT_TYPES[hook]
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ResultError(f"{hook} must return a list of {cls.__name__} or None, got {type(value).__name__}")
    if len(value) > max_items:
        raise ResultError(f"{hook} returned {len(value)} items; at most {max_items} are accepted")
    out = []
    for i, item in enumerate(value):
        if type(item) is not cls:
            raise ResultError(f"{hook} item {i} must be {cls.__name__}, got {type(item).__name__}")
        try:
            out.append(_revalidate(item, cls))
        except msgspec.ValidationError as exc:
            raise ResultError(f"{hook} item {i} is invalid: {exc}") from None
    return out


def check_transaction_result(value: Any) -> TransactionResult:
    """Return ``value`` as a validated :class:`TransactionResult`, or raise :class:`ResultError`."""
    if type(value) is not TransactionResult:
        raise ResultError(f"execute_transaction must return TransactionResult, got {type(value).__name__}")
    try:
        return _revalidate(value, TransactionResult)
    except msgspec.ValidationError as exc:
        raise ResultError(f"execute_transaction result is invalid: {exc}") from None
