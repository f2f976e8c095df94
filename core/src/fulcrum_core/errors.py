"""The host's error tree, and its single translation into RFC 9457 problem details.

    CoreError                      status
    ├── BadRequest                  400   malformed input (names the field)
    ├── Unauthorized                401   missing, expired or wrongly signed token
    ├── Forbidden                   403   token lacks a scope; resource not the caller's
    ├── NotFound                    404
    ├── Conflict                    409   illegal state transition; request still in flight
    ├── Unprocessable               422   well-formed but refused (suitability, limits, idempotency mismatch)
    └── ServiceUnavailable          503   a dependency is down (database, registry)

Domain code raises these; ``problem_details_plugin()`` turns them (and litestar's own HTTP
exceptions) into ``application/problem+json`` responses. Nothing else builds error responses.
"""

from __future__ import annotations

from typing import Any, ClassVar

from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

__all__ = [
    "BadRequest",
    "Conflict",
    "CoreError",
    "Forbidden",
    "NotFound",
    "ServiceUnavailable",
    "Unauthorized",
    "Unprocessable",
    "problem_details_plugin",
]

PROBLEM_BASE = "https://fulcrum.dev/problems/"


class CoreError(Exception):
    """Base of the host's domain errors. ``code`` is a stable slug; ``field`` names the bad input."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.field = field
        self.headers = headers
        self.extra = extra


class BadRequest(CoreError):
    status = 400
    default_code = "bad-request"


class Unauthorized(CoreError):
    status = 401
    default_code = "unauthorized"


class Forbidden(CoreError):
    status = 403
    default_code = "forbidden"


class NotFound(CoreError):
    status = 404
    default_code = "not-found"


class Conflict(CoreError):
    status = 409
    default_code = "conflict"


class Unprocessable(CoreError):
    status = 422
    default_code = "unprocessable"


class ServiceUnavailable(CoreError):
    status = 503
    default_code = "unavailable"


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Content",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _to_problem(exc: CoreError) -> ProblemDetailsException:
    extra: dict[str, Any] = {"code": exc.code}
    if exc.field:
        extra["field"] = exc.field
    extra.update(exc.extra)
    return ProblemDetailsException(
        status_code=exc.status,
        type_=PROBLEM_BASE + exc.code,
        title=_TITLES.get(exc.status, "Error"),
        detail=exc.detail,
        headers=exc.headers,
        extra=extra,
    )


def problem_details_plugin() -> ProblemDetailsPlugin:
    """Litestar plugin mapping every ``CoreError`` and ``HTTPException`` to problem details."""
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            enable_for_all_http_exceptions=True,
            exception_to_problem_detail_map={CoreError: _to_problem},
        )
    )
