"""Run ``execute_transaction``'s side effects at most once per customer and idempotency key.

The host already answers a repeated request from its journal; this guards the plugin's own state
when the host calls ``execute_transaction`` again for the same key (reconciliation, a retried
worker). The first result is stored and replayed. A claim counter bounded at 1 makes two
concurrent attempts impossible: the loser is refused instead of applying the change twice.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable

import msgspec

from fulcrum_sdk.context import PluginContext
from fulcrum_sdk.errors import (
    LimitExceeded,
    OutcomeUnknown,
    StorageOutcomeUnknown,
    StorageUnavailable,
    TransactionRefused,
)
from fulcrum_sdk.models import LocalizedText, TransactionResult

__all__ = ["run_once"]


def run_once(
    ctx: PluginContext, idempotency_key: str, action: Callable[[], TransactionResult], *, code_prefix: str
) -> TransactionResult:
    """Return the stored result for this key, or run ``action`` (which must itself be all-or-nothing,
    or raise ``OutcomeUnknown`` when it cannot tell whether it went through: the key then stays
    claimed, and every later call with it is refused as in progress). A storage write of the action's
    whose commit went unacknowledged (``StorageOutcomeUnknown``) is such an outcome: the claim stays."""
    digest = hashlib.sha256(f"{ctx.customer.id}\x00{idempotency_key}".encode()).hexdigest()
    result_key, claim_key = f"tx:{digest}", f"tx-claim:{digest}"
    stored = ctx.storage.get(result_key)
    if stored is not None:
        return msgspec.convert(stored, TransactionResult)
    try:
        ctx.storage.add(claim_key, 1, upper=1)
    except StorageOutcomeUnknown as exc:
        # Whether the claim is taken is unknown, but the action never ran: nothing was applied.
        raise StorageUnavailable(f"the claim could not be confirmed; nothing was applied: {exc}") from exc
    except LimitExceeded:
        raise TransactionRefused(
            f"{code_prefix}.request_in_progress",
            LocalizedText(
                zh_CN="该请求正在处理中，请稍后查看交易结果，无需重复提交。",
                en="This request is already being processed; check its result shortly "
                "instead of resubmitting.",
            ),
        ) from None
    try:
        result = action()
    except OutcomeUnknown:
        # The action may have gone through: the claim stays, so reconciliation (or a retried worker)
        # calling again with this key is refused as in progress instead of applying it twice.
        raise
    except BaseException:
        # Nothing was applied: let a retry try again. A release that fails leaves the claim (a retry is
        # refused, never applied twice), and the action's own exception says what happened.
        with contextlib.suppress(Exception):
            ctx.storage.add(claim_key, -1, lower=0)
        raise
    try:
        ctx.storage.put(result_key, msgspec.to_builtins(result))
    except Exception as exc:
        # Applied, but not remembered: the claim stays, so no retry applies it again, and the host
        # records the outcome as unknown rather than telling the customer it failed.
        raise OutcomeUnknown(f"the result was applied but could not be stored: {type(exc).__name__}") from exc
    return result
