"""Turning journal rows into responses, and stored responses back into the same responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from fulcrum_sdk.models import LocalizedText, TransactionResult

from fulcrum_core.data.models.transaction import TransactionRow
from fulcrum_core.problem_types import LEGACY_PROBLEM_BASE, PLUGIN_REFUSAL, by_code, type_uri
from fulcrum_core.transactions.models import (
    TransactionOutcome,
    TransactionProblem,
    TransactionResultView,
    TransactionView,
)

__all__ = ["RETRY_AFTER_S", "encode_body", "outcome_problem", "replay", "result_json", "view_of"]

RETRY_AFTER_S = 1
"""``Retry-After`` of a replayed outcome the plugin never saw (``retryable``): when to send it again;
the service puts what is left of the plugin's open breaker in its place."""

_TITLES = {422: "Unprocessable Content", 502: "Bad Gateway", 503: "Service Unavailable"}


def result_json(result: TransactionResult | None) -> dict[str, Any] | None:
    """A plugin's result as JSON for the journal's ``result`` column."""
    return None if result is None else msgspec.to_builtins(result)


def view_of(row: TransactionRow) -> TransactionView:
    """The customer's view of a journal row."""
    result = None if row.result is None else msgspec.convert(row.result, TransactionResultView)
    return TransactionView(
        id=row.id,
        type=row.type,
        plugin=row.plugin_id,
        status=row.status,  # type: ignore[arg-type]
        amount_fen=row.amount_fen,
        risk_level=row.risk_level,  # type: ignore[arg-type]
        created_at=row.created_at,
        updated_at=row.updated_at,
        result=result,
        attempts=row.attempts,
    )


def outcome_problem(
    status: int,
    code: str,
    detail: str,
    view: TransactionView,
    *,
    base: str,
    plugin_code: bool = False,
    message: LocalizedText | None = None,
    field: str | None = None,
    first_seen_at: datetime | None = None,
) -> TransactionProblem:
    """Problem details for a journaled transaction that did not succeed, typed under ``base``;
    ``plugin_code``: ``code`` is the plugin's own, documented as a plugin's refusal."""
    return TransactionProblem(
        type=type_uri(base, PLUGIN_REFUSAL if plugin_code else code),
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        code=code,
        transaction=view,
        field=field,
        message=message,
        first_seen_at=first_seen_at,
    )


def encode_body(body: TransactionView | TransactionProblem) -> str:
    """The exact JSON text stored for replay."""
    return msgspec.json.encode(body).decode()


def replay(row: TransactionRow, *, problem_base: str) -> TransactionOutcome:
    """The stored response of a finished row, marked as a replay; a problem stored before its type led
    anywhere (``LEGACY_PROBLEM_BASE``) is typed under ``problem_base`` as it would be now."""
    if row.response_status is None or row.response_body is None:
        raise ValueError(f"transaction {row.id} has no stored response yet")
    body_type: type[TransactionView | TransactionProblem] = (
        TransactionProblem if row.response_status >= 400 else TransactionView
    )
    body = msgspec.json.decode(row.response_body, type=body_type)
    if isinstance(body, TransactionProblem) and body.type.startswith(LEGACY_PROBLEM_BASE):
        code = body.type.removeprefix(LEGACY_PROBLEM_BASE)
        retyped = type_uri(problem_base, code if by_code(code) is not None else PLUGIN_REFUSAL)
        body = msgspec.structs.replace(body, type=retyped)
    return TransactionOutcome(
        status_code=row.response_status, body=body, replayed=True,
        retry_after=RETRY_AFTER_S if row.retryable else None,
    )
