"""The per-client rate limit in the OpenAPI document: a 429 with ``Retry-After`` on each limited route.

``RateLimitMiddleware`` refuses a client's ``/v1/`` request past its window with a 429 problem
(``code`` ``rate-limited``) and a ``Retry-After`` header in seconds. Litestar documents neither: the
middleware is outside any handler, and a ``ResponseSpec`` cannot carry response headers. Each limited
operation therefore declares the 429 body through ``responses=`` and is built with
:class:`RateLimitedOperation`, litestar's per-route ``operation_class`` hook, which adds the header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIHeader, OpenAPIResponse, OpenAPIType, Operation, Schema

from fulcrum_core.observability.ratelimit import PREFIX
from fulcrum_core.problem_types import ProblemCode, ProblemTypeURI
from fulcrum_core.settings import RateLimit

__all__ = ["RATE_LIMITED_RESPONSE", "RateLimitProblem", "RateLimitedOperation", "document_rate_limit"]


class RateLimitProblem(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9457 problem details of a 429: this client (token's client and subject) sent more requests
    in the window than the limit allows; ``detail`` says how many and when to retry."""

    type: ProblemTypeURI
    title: str
    status: int
    detail: str
    code: ProblemCode


RATE_LIMITED_RESPONSE = ResponseSpec(
    data_container=RateLimitProblem,
    description="Too many requests from this client in the current window (`code` rate-limited); "
    "retry after `Retry-After` seconds",
    media_type="application/problem+json",
    generate_examples=False,
)

RETRY_AFTER = OpenAPIHeader(
    description="Seconds until the client's window ends and it may send again (at least 1).",
    required=True,
    schema=Schema(type=OpenAPIType.INTEGER, minimum=1),
)


@dataclass
class RateLimitedOperation(Operation):
    """An operation whose 429 response carries the ``Retry-After`` header."""

    def __post_init__(self) -> None:
        refused = (self.responses or {}).get("429")
        if isinstance(refused, OpenAPIResponse):
            refused.headers = {**(refused.headers or {}), "Retry-After": RETRY_AFTER}


def document_rate_limit(app: Litestar, limit: RateLimit) -> None:
    """Give every operation the limit applies to (authenticated ``/v1/`` routes, when it is on) its
    429 (call once the routes are registered and before the schema is first served)."""
    if not limit.enabled:
        return
    for route in app.routes:
        if not route.path.startswith(PREFIX):
            continue
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_include_in_schema():
                continue
            if handler.opt.get("public") is True:  # no principal, so no client to count
                continue
            responses: dict[int, Any] = dict(handler.responses or {})
            responses.setdefault(429, RATE_LIMITED_RESPONSE)
            handler.responses = responses
            handler.operation_class = RateLimitedOperation
