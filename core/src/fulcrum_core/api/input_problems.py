"""What a 400 looks like in the OpenAPI document: the problem details the app really sends.

Litestar documents a 400 for every operation that takes input, in its own error shape
(``status_code``, ``detail``, ``extra``). This app answers every 400 with RFC 9457 problem details
(``errors.problem_details_plugin``), so each such operation documents :class:`InputProblem` instead,
unless the route declares its own 400 (``POST /v1/transactions`` declares ``TransactionProblem``).
A handler that reads its input from the raw request and refuses it itself declares
:data:`INPUT_PROBLEM_RESPONSE` (``POST /oauth/authorize``). The OAuth protocol endpoints
document their errors in RFC 6749's own JSON (``api/oauth.py``, ``OAuthError``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from fulcrum_core.api.query_text import checked_query
from fulcrum_core.problem_types import ProblemCode, ProblemTypeURI

__all__ = [
    "DATA_UNAVAILABLE_RESPONSE", "INPUT_PROBLEM_RESPONSE", "NOT_FOUND_RESPONSE", "FieldProblem",
    "InputProblem", "document_input_problems",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Parameters litestar fills from the connection itself; anything else is input a client can get wrong.
_NOT_INPUT = frozenset({"request", "state", "scope", "socket"})


class FieldProblem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One invalid input: where (``q``, ``params.amount_fen``, ``body``) and what is wrong with it; for a
    query, path or header parameter also the ``value`` sent (cut at 40 characters) and, when it takes
    one of a fixed set, the ``allowed`` values."""

    field: str
    message: str
    value: str | None = None
    allowed: list[str] | None = None


class InputProblem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details of a 400: the request could not be read (``code`` ``invalid-input``
    for a parameter or body that fails its schema, or the slug of the check that refused it);
    ``field`` names the first bad input and ``errors`` lists each when there are several."""

    type: ProblemTypeURI
    title: str
    status: int
    detail: str
    code: ProblemCode
    field: str | None = None
    errors: list[FieldProblem] | None = None


INPUT_PROBLEM_RESPONSE = ResponseSpec(
    data_container=InputProblem,
    description="The request is malformed: `field` names the input and `detail` the problem",
    media_type=PROBLEM_MEDIA_TYPE,
    generate_examples=False,
)


DATA_UNAVAILABLE_RESPONSE = ResponseSpec(
    data_container=InputProblem,
    description="The bank's customer data did not answer in time (`code` customer.data_unavailable); "
    "retry after `Retry-After` seconds",
    media_type=PROBLEM_MEDIA_TYPE,
    generate_examples=False,
)


NOT_FOUND_RESPONSE = ResponseSpec(
    data_container=InputProblem,
    description="Nothing by that name for this caller (an unknown id and another customer's alike); "
    "`field` names the path parameter",
    media_type=PROBLEM_MEDIA_TYPE,
    generate_examples=False,
)


def _takes_input(path: str, handler: HTTPRouteHandler) -> bool:
    """Where litestar documents a 400 of its own (a path parameter or any parameter a client sends), or
    where ``checked_query`` refuses a query that is no text, even on a route that takes no parameter."""
    if "{" in path or handler.resolve_before_request() is checked_query:
        return True
    return any(name not in _NOT_INPUT for name in handler.parsed_fn_signature.parameters)


def document_input_problems(app: Litestar) -> None:
    """Give every operation that takes input a documented 400 of :class:`InputProblem` (call once the
    routes are registered and before the schema is first served)."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_include_in_schema():
                continue
            responses: dict[int, Any] = dict(handler.responses or {})
            if 400 in responses or not _takes_input(route.path, handler):
                continue
            responses[400] = INPUT_PROBLEM_RESPONSE
            handler.responses = responses
