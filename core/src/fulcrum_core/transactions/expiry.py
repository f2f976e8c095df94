"""Ending a transaction the plugin never saw once its retry window has closed.

A row journaled ``retryable`` (503 ``transaction.plugin_unavailable``) may be run again only within
``Settings.transaction_retry_window_seconds`` of its first request. Past that it ends as failed for
good and answers 422 ``idempotency.expired`` from then on, whether a late retry finds it or
reconciliation sweeps the ones nobody retried: the journal and ``GET /v1/transactions/{id}`` never
keep calling retryable a transaction that no retry may run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import msgspec
from fulcrum_sdk.models import LocalizedText

from fulcrum_core.data.models.transaction import TransactionRow
from fulcrum_core.transactions.checks import IDEMPOTENCY_HEADER
from fulcrum_core.transactions.journal import Journal
from fulcrum_core.transactions.models import TransactionProblem
from fulcrum_core.transactions.render import encode_body, outcome_problem, view_of

__all__ = ["EXPIRED", "expire_closed", "expired_problem"]

log = logging.getLogger("fulcrum.transactions")

EXPIRED = LocalizedText(
    zh_CN="该交易请求已超过重试期限，未执行且不会再执行；如仍需办理，请重新发起。",
    en="This request is past its retry window; it was not carried out and will not be. Start it again if "
    "still wanted.",
)


def expired_problem(
    row: TransactionRow, *, window_seconds: int, now: datetime, problem_base: str
) -> TransactionProblem:
    """The 422 ``idempotency.expired`` that ``row`` (retryable, as read) answers once ended at ``now``
    (its ``type`` under ``problem_base``)."""
    hours, rest = divmod(window_seconds, 3600)
    window = f"{window_seconds} seconds" if rest else f"{hours} hour{'s' if hours != 1 else ''}"
    return outcome_problem(
        422,
        "idempotency.expired",
        f"the request with {IDEMPOTENCY_HEADER} {row.idempotency_key!r} was first seen at "
        f"{row.first_seen_at.isoformat()} and was never carried out; a transaction that was not "
        f"carried out within {window} of its first request is not carried out later, and has "
        "ended as failed: send it again with a new key if it is still wanted",
        msgspec.structs.replace(view_of(row), updated_at=now),
        base=problem_base,
        message=EXPIRED,
        field=IDEMPOTENCY_HEADER,
        first_seen_at=row.first_seen_at,
    )


def expire_closed(
    journal: Journal, *, window_seconds: int, now: datetime, problem_base: str, limit: int = 500
) -> list[str]:
    """End every retryable row whose retry window has closed at ``now`` as a late retry would (failed,
    no longer retryable, its 503 kept as its last attempt, the 422 stored for replay); their ids.
    A row a concurrent retry took first is left to that retry."""
    cutoff = now - timedelta(seconds=window_seconds)
    ended: list[str] = []
    rows = journal.retryable_since(cutoff, limit=limit)
    while rows:
        for row in rows:
            problem = expired_problem(row, window_seconds=window_seconds, now=now, problem_base=problem_base)
            body = encode_body(problem)
            if journal.expire(row, response_status=422, response_body=body, now=now):
                log.info("transaction %s: never retried within its retry window; ended as failed", row.id)
                ended.append(row.id)
        rows = journal.retryable_since(cutoff, limit=limit, after=rows[-1])
    return ended
