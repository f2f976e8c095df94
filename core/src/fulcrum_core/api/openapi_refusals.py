"""The refusals the app answers before a handler runs, in the OpenAPI document: each operation that can
give one documents it as the problem details it is.

``AcceptableMiddleware`` answers 406 (``code`` ``not-acceptable``, ``field`` ``Accept``) on the JSON
API's routes when ``Accept`` admits no JSON; a JSON body declared as another media type, in another
charset than UTF-8 or with a content coding is a 415 (``media_types``), as is a form in another charset
at the OAuth endpoints that answer problem details; ``checked_query`` answers 400 for a malformed
percent-escape or a query that is not UTF-8 on every route it guards, those taking no parameter too.
Litestar documents none of them, so a generated client or schemathesis took each for an undocumented
answer. Operations that declare their own 406 or 415 (``POST /v1/transactions``, a wheel upload) keep it.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec

from fulcrum_core.api.acceptable import PREFIXES
from fulcrum_core.api.input_problems import PROBLEM_MEDIA_TYPE, InputProblem

__all__ = ["NOT_ACCEPTABLE_RESPONSE", "UNSUPPORTED_MEDIA_TYPE_RESPONSE", "document_refusals"]

NOT_ACCEPTABLE_RESPONSE = ResponseSpec(
    data_container=InputProblem,
    description="`Accept` admits no media type this route answers in (`code` not-acceptable, `field` "
    "Accept): it answers application/json, its errors application/problem+json",
    media_type=PROBLEM_MEDIA_TYPE,
    generate_examples=False,
)

UNSUPPORTED_MEDIA_TYPE_RESPONSE = ResponseSpec(
    data_container=InputProblem,
    description="The body is not declared as this route reads it (`field` Content-Type or "
    "Content-Encoding): another media type, a charset other than UTF-8, or a content coding",
    media_type=PROBLEM_MEDIA_TYPE,
    generate_examples=False,
)


def _reads_json_body(handler: HTTPRouteHandler) -> bool:
    """Whether ``handler`` takes a JSON body (its ``data``), which ``FulcrumRequest.json`` judges first."""
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return False
    media_type = getattr(data.kwarg_definition, "media_type", RequestEncodingType.JSON)
    return media_type == RequestEncodingType.JSON


def document_refusals(app: Litestar) -> None:
    """Give every operation of the JSON API its 406, and every one reading a JSON body its 415 (call once
    the routes are registered and before the schema is first served)."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_include_in_schema():
                continue
            responses: dict[int, Any] = dict(handler.responses or {})
            if route.path.startswith(PREFIXES):
                responses.setdefault(406, NOT_ACCEPTABLE_RESPONSE)
            if _reads_json_body(handler):
                responses.setdefault(415, UNSUPPORTED_MEDIA_TYPE_RESPONSE)
            handler.responses = responses
