"""The host's error tree, and its single translation into RFC 9457 problem details.

    CoreError                      status
    ├── BadRequest                  400   malformed input (names the field)
    ├── Unauthorized                401   missing, expired or wrongly signed token
    ├── Forbidden                   403   token lacks a scope; resource not the caller's
    ├── NotFound                    404
    ├── NotAcceptable               406   an Accept admitting none of the media types the route answers
    ├── Conflict                    409   illegal state transition; request still in flight
    ├── UnsupportedMediaType        415   a body of a media type the route does not read
    ├── Unprocessable               422   well-formed but refused (suitability, limits, idempotency mismatch)
    └── ServiceUnavailable          503   a dependency is down (database, registry)

An exception nobody expected is the 500 problem ``internal`` (outside debug mode), logged here.

Domain code raises these; ``problem_details_plugin(base)`` turns them (and litestar's own HTTP
exceptions) into ``application/problem+json`` responses. Nothing else builds error responses.

Each problem's ``code`` is a stable slug clients switch on, and its ``type`` the URI under ``base``
where that code is documented (``fulcrum_core.problem_types``, served at ``GET /problems/{code}``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, ClassVar

from fulcrum_sdk._in_words import choices_of, dotted, in_words, type_at
from litestar import Request, Response
from litestar.config.app import AppConfig
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)

from fulcrum_core.api.head import with_head
from fulcrum_core.parameter_problems import describe_parameter, echoed, undecodable_path
from fulcrum_core.problem_types import type_uri

__all__ = [
    "BadRequest",
    "Conflict",
    "CoreError",
    "Forbidden",
    "NotAcceptable",
    "NotFound",
    "ServiceUnavailable",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "problem_details_plugin",
]

class CoreError(Exception):
    """Base of the host's domain errors. ``code`` is a stable slug; ``field`` names the bad input;
    ``type_code`` is the catalogue entry documenting it when ``code`` is not one (a plugin's own code)."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        type_code: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.type_code = type_code or self.code
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


class NotAcceptable(CoreError):
    status = 406
    default_code = "not-acceptable"


class Conflict(CoreError):
    status = 409
    default_code = "conflict"


class UnsupportedMediaType(CoreError):
    status = 415
    default_code = "unsupported-media-type"


class Unprocessable(CoreError):
    status = 422
    default_code = "unprocessable"


class ServiceUnavailable(CoreError):
    status = 503
    default_code = "unavailable"


log = logging.getLogger("fulcrum.api")

_TITLES = {
    405: "Method Not Allowed",
    406: "Not Acceptable",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    429: "Too Many Requests",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Content",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _to_problem(exc: CoreError, base: str) -> ProblemDetailsException:
    extra: dict[str, Any] = {"code": exc.code}
    if exc.field:
        extra["field"] = exc.field
    extra.update(exc.extra)
    return ProblemDetailsException(
        status_code=exc.status,
        type_=type_uri(base, exc.type_code),
        title=_TITLES.get(exc.status, "Error"),
        detail=exc.detail,
        headers=exc.headers,
        extra=extra,
    )


_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")


def _field_error(item: Any, request: Request[Any, Any, Any]) -> dict[str, Any]:
    """One entry of litestar's validation ``extra`` list as ``field`` and ``message``; a parameter's
    also names the value sent and, for a fixed set, the ``allowed`` values."""
    if not isinstance(item, dict):
        return {"field": "body", "message": str(item)}
    key = str(item.get("key") or item.get("source") or "body")
    message = str(item.get("message") or "is invalid")
    source = item.get("source")
    if source != "body":
        # litestar's ParamType is a str enum: compare it as the plain string it is, never str() it
        problem = describe_parameter(request, key, source) if isinstance(source, str) else None
        if problem is None:
            return {"field": key, "message": message}
        described: dict[str, Any] = {"field": problem.field, "message": problem.message}
        described["value"] = problem.value
        if problem.allowed is not None:
            described["allowed"] = list(problem.allowed)
        return described
    if key == "data":  # litestar's internal name for the body itself
        if message == "'data'":  # its KeyError: no body at all
            return {"field": "body", "message": "a JSON request body is required"}
        key = ""
    missing = _MISSING_FIELD.match(message)
    if missing:  # msgspec names the missing field in the message, not in the path
        return {"field": dotted(f"{key}.{missing['name']}"), "message": "is required"}
    body = _body_type(request)
    unknown = _UNKNOWN_FIELD.match(message)
    if unknown:  # likewise a field the body may not carry
        if body is not None:
            return _in_words(body, f"{message} - at `$.{key}`" if key else message)
        return {"field": dotted(f"{key}.{unknown['name']}"), "message": "is not a field of this body"}
    if body is not None and key:
        from fulcrum_registry.schemas import plain_problem

        allowed = choices_of(type_at(body, key))
        if allowed is not None and message.startswith("Invalid enum value"):
            # the values the catalogue's invalid-input promises for a fixed set, as a parameter has
            return {**_in_words(body, f"{message} - at `$.{key}`"), "allowed": allowed}
        message = plain_problem(body, key, message)  # e.g. a pattern in words, not the regex
        if message.startswith("Expected"):
            return _in_words(body, f"{message} - at `$.{key}`")
    return {"field": dotted(key) or "body", "message": message}


def _in_words(body: type[Any], message: str) -> dict[str, Any]:
    """msgspec's ``message`` about the body as ``field`` (dotted: ``reasons.1``) and ``message`` in words."""
    path, problem = in_words(body, message)
    return {"field": dotted(path) or "body", "message": problem}


def _body_type(request: Request[Any, Any, Any]) -> type[Any] | None:
    """The struct the route decodes its body into (its ``data`` parameter), if it declares one."""
    signature = getattr(request.scope.get("route_handler"), "parsed_fn_signature", None)
    body = signature.parameters.get("data") if signature is not None else None
    return body.annotation if body is not None and isinstance(body.annotation, type) else None


def _validation_to_problem(
    exc: ValidationException, request: Request[Any, Any, Any], base: str
) -> ProblemDetailsException:
    """Litestar's own parameter/body validation, in the same shape as ``CoreError`` problems."""
    items = exc.extra if isinstance(exc.extra, list) else []
    errors = [_field_error(i, request) for i in items]
    if errors:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        field = errors[0]["field"]
    else:
        detail = str(exc.detail) if exc.detail and exc.detail != "Bad Request" else "the request is malformed"
        field = "body"
    extra: dict[str, Any] = {"code": "invalid-input", "field": field}
    if errors:
        extra["errors"] = errors
    return ProblemDetailsException(
        status_code=exc.status_code,
        type_=type_uri(base, "invalid-input"),
        title=_TITLES.get(exc.status_code, "Bad Request"),
        detail=detail,
        headers=exc.headers,
        extra=extra,
    )


_HTTP_CODES = {
    400: "invalid-input",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
}


def _http_to_problem(exc: HTTPException, base: str) -> ProblemDetailsException:
    """Litestar's other HTTP errors (malformed JSON, unknown route, wrong method) in the same shape."""
    code = _HTTP_CODES.get(exc.status_code, "http-error")
    extra: dict[str, Any] = {"code": code}
    if exc.status_code == 400:
        extra["field"] = "body"
    if isinstance(exc.extra, dict):
        extra.update(exc.extra)
    return ProblemDetailsException(
        status_code=exc.status_code,
        type_=type_uri(base, code),
        title=_TITLES.get(exc.status_code, "Error"),
        detail=str(exc.detail),
        headers=exc.headers,
        extra=extra,
    )


def _internal_problem(base: str) -> ProblemDetailsException:
    """An exception no handler expected, as the 500 problem ``internal``: nothing of it is sent (its
    text may name internals); the log has it, under the response's request id."""
    return ProblemDetailsException(
        status_code=500,
        type_=type_uri(base, CoreError.default_code),
        title="Internal Server Error",
        detail="the host failed unexpectedly; report the X-Request-ID of this response if it persists",
        extra={"code": CoreError.default_code},
    )


class _ProblemDetails(ProblemDetailsPlugin):
    """The problem details plugin, plus a handler for litestar's validation errors that sees the
    request (the config's map sees only the exception): a bad parameter is named with the value sent;
    and outside debug mode (which shows the traceback) an unexpected exception's 500 as a problem too."""

    def __init__(self, config: ProblemDetailsConfig, base: str) -> None:
        super().__init__(config)
        self.base = base

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config = super().on_app_init(app_config)
        base = self.base

        def validation_response(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
            return _validation_to_problem(exc, request, base).to_response(request)

        def internal_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
            # litestar logs it only in debug mode: without this line the request id would lead nowhere
            log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
            return _internal_problem(base).to_response(request)

        def not_found_response(request: Request[Any, Any, Any], exc: NotFoundException) -> Response[Any]:
            if exc.detail == _TITLES[404] and (undecodable := _undecodable(request)) is not None:
                return undecodable
            if exc.detail == _TITLES[404]:  # the router's: no route matched (handlers say what is missing)
                exc = NotFoundException(
                    f"no route answers {echoed(request.url.path, 100)}: /schema/openapi.json lists the "
                    "routes and what each path parameter takes",
                    extra={"field": "path"},
                )
            return _http_to_problem(exc, base).to_response(request)

        def method_response(request: Request[Any, Any, Any], exc: MethodNotAllowedException) -> Response[Any]:
            if exc.detail == _TITLES[405] and (undecodable := _undecodable(request)) is not None:
                return undecodable
            allowed = next((v for k, v in (exc.headers or {}).items() if k.lower() == "allow"), None)
            if exc.detail == _TITLES[405] and allowed:  # the router's, with the route's methods
                allowed = with_head(allowed)  # a GET route answers HEAD too (api/head.py)
                exc = MethodNotAllowedException(
                    f"{echoed(request.method, 20)[1:-1]} is not a method of {echoed(request.url.path, 100)}, "
                    f"which takes {allowed}",
                    headers={"Allow": allowed}, extra={"field": "method"},
                )
            return _http_to_problem(exc, base).to_response(request)

        def _undecodable(request: Request[Any, Any, Any]) -> Response[Any] | None:
            """The 400 of a path that is not UTF-8 once percent-decoded, which the router matched to no
            route (or none of the method) before ``api/path_text`` could refuse it; None for text."""
            problem = undecodable_path(request.scope)
            if problem is None:
                return None
            return _to_problem(BadRequest(problem[1], field=problem[0]), base).to_response(request)

        def too_large_response(request: Request[Any, Any, Any], exc: RequestEntityTooLarge) -> Response[Any]:
            limit = request.route_handler.resolve_request_max_body_size()
            if exc.detail == RequestEntityTooLarge.detail and limit:  # litestar's, past the route's limit
                exc = RequestEntityTooLarge(
                    f"the body is larger than this route reads: at most {limit} bytes ({limit // 1024} KiB)",
                    extra={"field": "body"},
                )
            return _http_to_problem(exc, base).to_response(request)

        app_config.exception_handlers[ValidationException] = validation_response
        app_config.exception_handlers[RequestEntityTooLarge] = too_large_response
        app_config.exception_handlers[NotFoundException] = not_found_response
        app_config.exception_handlers[MethodNotAllowedException] = method_response
        if not app_config.debug:
            app_config.exception_handlers.setdefault(Exception, internal_response)
        return app_config


def _under(
    base: str, convert: Callable[[Any, str], ProblemDetailsException]
) -> Callable[[Any], ProblemDetailsException]:
    return lambda exc: convert(exc, base)


def problem_details_plugin(base: str) -> ProblemDetailsPlugin:
    """Litestar plugin mapping every ``CoreError`` and ``HTTPException`` to problem details whose
    ``type`` is ``base`` (``problem_types.problem_base``) plus the code's catalogue entry."""
    return _ProblemDetails(
        ProblemDetailsConfig(
            enable_for_all_http_exceptions=True,
            exception_to_problem_detail_map={
                CoreError: _under(base, _to_problem), HTTPException: _under(base, _http_to_problem),
            },
        ),
        base,
    )
