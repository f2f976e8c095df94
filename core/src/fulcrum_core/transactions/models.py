"""What the transaction API reads and writes: msgspec Structs, so the OpenAPI schema is exact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from fulcrum_sdk.models import LocalizedText, RiskLevel

from fulcrum_core.problem_types import ProblemCode, ProblemTypeURI

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "Suitability",
    "TransactionBody",
    "TransactionOutcome",
    "TransactionProblem",
    "TransactionResultView",
    "TransactionStatus",
    "TransactionTypeList",
    "TransactionTypeView",
    "TransactionView",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"

TransactionStatus = Literal["pending", "succeeded", "failed", "unknown"]

Suitability = Literal["ok", "risk_too_high", "assessment_expired", "assessment_missing", "depends_on_params"]
"""Whether the customer may use a type, as far as the host can tell before seeing parameters."""


class TransactionBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The body of ``POST /v1/transactions``: which type, and its parameters."""

    type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    params: dict[str, Any] = {}


class TransactionResultView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the owning plugin reported: its reference, or a refusal code and message."""

    reference: str | None = None
    code: str | None = None
    message: LocalizedText | None = None
    data: dict[str, str | int | bool] = {}


class TransactionView(msgspec.Struct, frozen=True, kw_only=True):
    """A journaled transaction as its customer sees it."""

    id: str
    type: str
    plugin: str
    status: TransactionStatus
    amount_fen: int | None
    risk_level: RiskLevel | None
    created_at: datetime
    updated_at: datetime
    result: TransactionResultView | None = None
    attempts: Annotated[
        int,
        msgspec.Meta(
            ge=1,
            description=(
                "How many times the host has started this transaction. Above 1 only when earlier "
                "attempts ended before the plugin was asked (503 `transaction.plugin_unavailable`) and "
                "a retry with the same Idempotency-Key ran it again: a status that went from `failed` "
                "to `pending` or `succeeded` belongs to a later attempt."
            ),
        ),
    ] = 1


class TransactionProblem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details: the one shape of every 422, 502 and 503 of ``POST /v1/transactions``.

    ``transaction`` is the journal entry when the request got that far (the plugin was called and
    refused or failed), so a client can show or look up what happened; a refusal before journaling
    (unknown type, invalid params, suitability, limits, a reused key) has none. One schema with an
    optional member, not a union, so generated clients get a single error type to decode.
    """

    type: ProblemTypeURI
    title: str
    status: int
    detail: str
    code: ProblemCode
    transaction: TransactionView | None = None
    field: str | None = None
    message: LocalizedText | None = None
    # ``idempotency.mismatch``: the transaction the reused Idempotency-Key belongs to.
    transaction_id: str | None = None
    # ``idempotency.expired``: when the first request under the Idempotency-Key was journaled.
    first_seen_at: datetime | None = None


class TransactionTypeView(msgspec.Struct, frozen=True, kw_only=True):
    """One transaction type the customer can submit, with the JSON schema of its ``params``."""

    key: str
    name: LocalizedText
    description: LocalizedText | None
    plugin: str
    risk_level: RiskLevel | None
    suitability: Suitability
    params_schema: dict[str, Any]
    # The parameters naming one of the customer's accounts: send the id the plugin gave, as given.
    account_params: list[str] = []


class TransactionTypeList(msgspec.Struct, frozen=True, kw_only=True):
    """The body of ``GET /v1/transaction-types``."""

    items: list[TransactionTypeView]


@dataclass(frozen=True, slots=True)
class TransactionOutcome:
    """What ``POST /v1/transactions`` answers: the status code and body, whether it is a replay, and
    for an outcome the plugin never saw, the seconds after which a retry with the same key runs it."""

    status_code: int
    body: TransactionView | TransactionProblem
    replayed: bool = False
    retry_after: int | None = None

    @property
    def media_type(self) -> str:
        """``application/problem+json`` for a problem, else ``application/json``."""
        return PROBLEM_MEDIA_TYPE if isinstance(self.body, TransactionProblem) else "application/json"

    @property
    def transaction_id(self) -> str:
        """The journal id the outcome is about (an outcome's problem always carries its transaction)."""
        view = self.body if isinstance(self.body, TransactionView) else self.body.transaction
        if view is None:
            raise ValueError("a transaction outcome's problem must carry its journal entry")
        return view.id
