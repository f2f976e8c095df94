"""``/v1/transaction-types`` and ``/v1/transactions``: the HTTP face of the transaction pipeline.

The pipeline itself (and every status code it answers) is
:class:`fulcrum_core.transactions.service.TransactionService`; these handlers only pass the customer,
the ``Idempotency-Key`` header and the raw body along, and add ``Location`` and
``Idempotent-Replayed`` headers to what comes back.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody, SkipValidation

from fulcrum_core.api.deps import current_customer, customer_profile
from fulcrum_core.api.input_problems import NOT_FOUND_RESPONSE
from fulcrum_core.api.media_types import json_body_refusal
from fulcrum_core.auth.principal import Principal
from fulcrum_core.errors import BadRequest, Forbidden
from fulcrum_core.runtime import runtime_of
from fulcrum_core.transactions.checks import IDEMPOTENCY_HEADER, parse_body
from fulcrum_core.transactions.models import (
    PROBLEM_MEDIA_TYPE,
    TransactionBody,
    TransactionProblem,
    TransactionTypeList,
    TransactionView,
)

__all__ = ["ROUTES", "get_transaction", "list_transaction_types", "submit_transaction"]

REPLAYED_HEADER = "Idempotent-Replayed"


def _problem(description: str) -> ResponseSpec:
    """An error response of ``POST /v1/transactions``: always ``TransactionProblem`` (see its docstring)."""
    return ResponseSpec(
        data_container=TransactionProblem, description=description, media_type=PROBLEM_MEDIA_TYPE,
        generate_examples=False,
    )


@get(
    "/v1/transaction-types", opt={"scopes": ["transactions:read"]}, tags=["transactions"],
    summary="Transaction types the customer can submit", sync_to_thread=True,
)
def list_transaction_types(request: Request[Any, Any, Any]) -> TransactionTypeList:
    """Each type with its owning plugin, risk level, suitability for this customer and params schema."""
    return runtime_of(request).transactions.types_for(current_customer(request))


async def _read_first(request: Request[Any, Any, Any]) -> None:
    """Before litestar decodes the body (``data`` only documents it), refuse what the pipeline cannot
    take, with the catalogue's problems: a body that is not declared JSON in UTF-8 (415; money moved
    for ``text/plain``), an ``Idempotency-Key`` sent twice (the first was used), and a body that is not
    JSON or names a member twice (``body.malformed``/``body.invalid``; litestar answered the first
    as ``invalid-input`` and kept the last of two amounts)."""
    raw = await request.body()
    if not raw:
        raise BadRequest("a JSON request body is required", code="body.malformed", field="body")
    refusal = json_body_refusal(request.scope, raw)
    if refusal is not None:
        raise refusal
    keys = request.headers.getall(IDEMPOTENCY_HEADER, [])
    if len(keys) > 1:
        raise BadRequest(
            f"the {IDEMPOTENCY_HEADER} header is sent {len(keys)} times; send it once",
            code="idempotency.key_invalid", field=IDEMPOTENCY_HEADER,
        )
    parse_body(raw)


MAX_BODY = 64 * 1024
"""The largest transaction request read (a type and its params; litestar answers 413 past it). The body
is parsed on the event loop, more than once: litestar's default of 10 MB held it for over a second."""


@post(
    "/v1/transactions", opt={"scopes": ["transactions:write"]}, tags=["transactions"],
    before_request=_read_first, request_max_body_size=MAX_BODY,
    summary="Submit a transaction (idempotent per customer, OAuth client and Idempotency-Key)",
    status_code=201,
    responses={
        202: ResponseSpec(
            data_container=TransactionView, generate_examples=False,
            description="The outcome is unknown (the plugin missed its deadline); it will be reconciled",
        ),
        400: _problem(
            "The body or the Idempotency-Key header cannot be read (`field` names it): not JSON "
            "(`body.malformed`), a member missing, unknown, of the wrong type or named twice "
            "(`body.invalid`), the key missing, malformed or sent twice"
        ),
        413: _problem(f"The body is larger than {MAX_BODY // 1024} KiB"),
        415: _problem("The body is not declared JSON: send `Content-Type: application/json`"),
        409: _problem(
            "A request with this key (from this client) is still in flight (`transaction_id`); retry after "
            "a second"
        ),
        422: _problem(
            "Refused: an unknown type or invalid params, suitability, limits, a key reused with "
            "another body, or the retry of a `transaction.plugin_unavailable` whose type another plugin "
            "runs now (`idempotency.owner_changed`) (before journaling, no `transaction`), by the "
            "plugin (with `transaction`), or the retry of a `transaction.plugin_unavailable` after its "
            "retry window (`idempotency.expired`, with `transaction` and `first_seen_at`: the "
            "transaction has ended as failed; send it again under a new key if still wanted)"
        ),
        502: _problem("The owning plugin failed; nothing was carried out (`transaction` once journaled)"),
        503: _problem(
            "The owning plugin or the database is temporarily unavailable; nothing was carried out. "
            "Retry after `Retry-After` seconds with the same Idempotency-Key and body: a request refused "
            "before journaling is judged afresh, and a journaled one (`transaction`, "
            "`transaction.plugin_unavailable`: the plugin was never asked) is carried out as the same "
            "transaction, by the plugin it was sent to, within the retry window from its first request "
            "(24 hours by default)"
        ),
    },
)
async def submit_transaction(
    request: Request[Any, Any, Any],
    data: JSONBody[SkipValidation[TransactionBody]],
    idempotency_key: Annotated[
        str | None,
        HeaderParameter(
            name=IDEMPOTENCY_HEADER, required=False,
            description=(
                "Unique per transaction; resend the same value (and body) to retry safely. Scoped to the "
                "customer and the OAuth client that obtained the token: another client acting for the "
                "same customer (a partner's backend, the app) never meets this key's transaction."
            ),
        ),
    ] = None,
) -> Response[TransactionView]:
    """Validate, check, journal and execute one transaction; a retry with the same key replays."""
    runtime = runtime_of(request)
    customer_ref, _ = await customer_profile(request)
    # ``data`` only documents the body: the service validates the raw bytes itself, so every
    # problem names its field the same way, and hashes them for idempotency.
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):  # pragma: no cover - customer_profile refused it already
        raise Forbidden("this route is for customer tokens only", code="customer.required")
    # Idempotency keys are scoped per customer and OAuth client (the app, a plugin's backend), and a
    # plugin's own client may act only within its plugin's transaction types: the service does both.
    outcome = await runtime.transactions.submit(
        customer_ref, idempotency_key, await request.body(), client_id=principal.client_id
    )
    headers = {"Location": f"/v1/transactions/{outcome.transaction_id}"}
    if outcome.replayed:
        headers[REPLAYED_HEADER] = "true"
    if outcome.retry_after is not None:
        headers["Retry-After"] = str(outcome.retry_after)
    return Response(
        content=outcome.body,  # type: ignore[arg-type]
        status_code=outcome.status_code, media_type=outcome.media_type, headers=headers,
    )


@get(
    "/v1/transactions/{tx_id:str}", opt={"scopes": ["transactions:read"]}, tags=["transactions"],
    summary="One of the customer's transactions", sync_to_thread=True, responses={404: NOT_FOUND_RESPONSE},
)
def get_transaction(request: Request[Any, Any, Any], tx_id: FromPath[str]) -> TransactionView:
    """The transaction's status and result; another customer's id is 404, like an unknown one, and so is
    another plugin's to a plugin's own client."""
    customer_ref = current_customer(request)  # a customer's token: a Principal by then
    principal = request.scope["user"]
    return runtime_of(request).transactions.get(customer_ref, tx_id, client_id=principal.client_id)


ROUTES: list[Any] = [list_transaction_types, submit_transaction, get_transaction]
