"""The authentication middleware: a Bearer access token on every non-public route, then its scopes.

For each request to a handler not marked ``opt={"public": True}``:

1. read ``Authorization: Bearer <jwt>`` (on routes whose ``opt`` allows it, also HTTP Basic with the
   user ``__token__``: ``basic``) and verify it with ``runtime_of(connection).tokens`` for the
   audience ``settings.audience`` (401 problem naming the ``Authorization`` header as its field, with
   an RFC 6750 challenge on any failure, and a Basic one first where Basic is allowed);
2. check the route's declared scopes (``guards.check_scopes``; read from ``opt`` once per handler):
   403 when one is missing or the route declares nothing.

On success ``request.user`` is the ``Principal`` and ``request.auth`` the ``AccessTokenClaims``.

Audience: one audience, ``settings.audience``, for the whole HTTP API; customer, staff and client
tokens are told apart by their kind claim and, above all, by scopes: staff scopes are only ever issued
in staff tokens (``TokenService.issue``), so a customer token can never pass a staff route.
OPTIONS requests are not authenticated (litestar's default; its generated handlers only list methods).
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult, DefineMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from fulcrum_core.auth.basic import BASIC_CHALLENGE, TOKEN_AS_BASIC_OPT, basic_token
from fulcrum_core.auth.claims import AccessTokenClaims
from fulcrum_core.auth.guards import PUBLIC_OPT, check_scopes, declared_scopes
from fulcrum_core.auth.principal import Principal
from fulcrum_core.errors import Unauthorized
from fulcrum_core.parameter_problems import echoed
from fulcrum_core.runtime import Runtime, runtime_of

__all__ = ["BearerAuthenticationMiddleware", "auth_middleware", "bearer_token"]


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer …`` header value; ``""`` when absent or another scheme."""
    if not authorization:
        return ""
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def _challenge(error: Unauthorized) -> str:
    """The RFC 6750 ``WWW-Authenticate`` value; no error code when no token was sent (§3.1)."""
    if error.code == "token.missing":
        return 'Bearer realm="fulcrum"'
    # error_description must be printable ASCII without quotes or backslashes (RFC 6750 §3).
    description = "".join(c for c in error.detail if " " <= c <= "~" and c not in '"\\')
    return f'Bearer realm="fulcrum", error="invalid_token", error_description="{description}"'


def _missing_in_words(error: Unauthorized, sent: str | None) -> str:
    """The refusal's detail; for an ``Authorization`` header of another scheme (``Basic``) it says a
    Bearer token is expected, where "no access token was sent" left the sender puzzled."""
    scheme = (sent or "").strip().partition(" ")[0]
    if error.code != "token.missing" or not scheme or scheme.lower() == "bearer":
        return error.detail
    return (
        f"the Authorization header uses the {echoed(scheme, 20)} scheme; a Bearer access token is expected "
        "(Authorization: Bearer <token>)"
    )


def _authorization(scope: Scope) -> str | None:
    """The request's ``Authorization`` header, read from the raw ASGI headers; 401 ``token.malformed``
    when it is sent more than once (it is no list, RFC 9110 §11.6.2: reading the first and ignoring the
    rest, the host and a proxy reading the last would judge different credentials).

    Cheaper than ``connection.headers`` (which builds a case-insensitive multidict of every header).
    """
    found: list[bytes] = []
    for name, value in scope["headers"]:
        if len(name) == 13 and name.lower() == b"authorization":  # 13 == len(b"authorization")
            found.append(value)
    if not found:
        return None
    if len(found) > 1:
        raise Unauthorized(
            f"the Authorization header is sent {len(found)} times; send it once", code="token.malformed"
        )
    return found[0].decode("latin-1")


class BearerAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Verifies the Bearer token and the route's scope declaration (see the module docstring).

    Each handler's declared scopes (and whether its ``opt`` skips authentication) are read once and
    remembered for this instance (litestar builds one middleware stack per route, so the map holds
    that route's few handlers).
    """

    def __init__(self, app: ASGIApp, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._required: dict[object, frozenset[str] | None] = {}
        self._skips: dict[object, bool] = {}
        self._basic: dict[object, bool] = {}
        # The fast path below decides what litestar's ``should_bypass_middleware`` does, for an HTTP
        # request when no path pattern is excluded; anything else takes litestar's own path.
        self._fast = self.exclude is None and ScopeType.HTTP in self.scopes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """litestar's ``__call__`` without its generic per-request work: the route's opt-out read once
        per handler, no ``ASGIConnection`` built to authenticate (≈ 0.6 µs a request)."""
        if not self._fast or scope["type"] != ScopeType.HTTP:
            await super().__call__(scope, receive, send)
            return
        handler = scope.get("route_handler")
        try:
            skip = self._skips[handler]
        except KeyError:
            key = self.exclude_opt_key
            skip = self._skips[handler] = bool(key and handler is not None and handler.opt.get(key))
        if not skip and scope.get("method") not in self.exclude_http_methods:
            scope["user"], scope["auth"] = self._authenticate(scope, scope["litestar_app"].state["runtime"])
        await self.app(scope, receive, send)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """The principal and claims of a valid token that holds the route's scopes; raises otherwise."""
        user, auth = self._authenticate(connection.scope, runtime_of(connection))
        return AuthenticationResult(user=user, auth=auth)

    def _authenticate(self, scope: Scope, runtime: Runtime) -> tuple[Principal, AccessTokenClaims]:
        """The principal and claims for ``request.user`` and ``request.auth``; raises as described."""
        handler = scope.get("route_handler")
        try:
            basic = self._basic[handler]
        except KeyError:
            basic = self._basic[handler] = handler is not None and handler.opt.get(TOKEN_AS_BASIC_OPT) is True
        authorization: str | None = None
        try:
            authorization = _authorization(scope)
            token = bearer_token(authorization)
            if basic and not token:
                token = basic_token(authorization)
            verified = runtime.tokens.verify_token(token, audience=runtime.settings.audience)
        except Unauthorized as exc:
            challenge = f"{BASIC_CHALLENGE}, {_challenge(exc)}" if basic else _challenge(exc)
            detail = exc.detail if basic else _missing_in_words(exc, authorization)
            raise Unauthorized(
                detail, code=exc.code, field="Authorization", headers={"WWW-Authenticate": challenge}
            ) from None
        try:
            required = self._required[handler]
        except KeyError:
            required = self._required[handler] = declared_scopes(handler.opt if handler is not None else {})
        principal = verified.principal
        if required is None or not required <= principal.scopes:
            check_scopes(principal, required)
        return principal, verified.claims


def auth_middleware() -> DefineMiddleware:
    """The middleware for ``Litestar(middleware=[...])``: handlers with ``opt["public"]`` skip it."""
    return DefineMiddleware(BearerAuthenticationMiddleware, exclude_from_auth_key=PUBLIC_OPT)
