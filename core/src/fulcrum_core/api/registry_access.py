"""Who may do what in the registry API, beyond the scopes each route declares.

* ``registry:review`` — the platform team: reads everything, reviews, suspends, creates publishers.
* ``registry:install`` — a deployment's installer: reads the package index (every approved wheel) and
  nothing else, so a pipeline installing plugins holds no power to review or suspend.
* ``registry:publish`` — a publisher's engineers: submit and read releases *of the publisher their
  token names* (the ``fulcrum_publisher`` claim, ``fulcrum token issue --publisher ID``) and nothing
  else. A publish token without that claim can read the catalogue but cannot act for anyone.

Routes both kinds of staff use declare ``opt={"scopes": []}`` (any valid token) and add
``staff_guard``, which requires a staff token holding at least one of the two registry scopes.
The registry's router sets that guard for all its paths, so it also guards the OPTIONS handler litestar
generates for each of them, which the authentication middleware leaves unauthenticated (a browser's
preflight carries no token): the guard lets OPTIONS through, as the middleware does, since that handler
only lists the path's methods.
"""

from __future__ import annotations

from typing import Any, Final

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from fulcrum_core.auth.claims import AccessTokenClaims
from fulcrum_core.auth.principal import Principal
from fulcrum_core.errors import Forbidden
from fulcrum_core.parameter_problems import echoed

__all__ = [
    "INSTALL", "PUBLISH", "REVIEW", "acting_publisher", "index_guard", "installs_all", "is_reviewer",
    "own_publisher", "staff_guard",
]

PUBLISH: Final = "registry:publish"
REVIEW: Final = "registry:review"
INSTALL: Final = "registry:install"


def _principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    user = connection.user
    if not isinstance(user, Principal) or user.kind != "staff":
        raise Forbidden("registry routes are for staff tokens only", code="staff.required")
    return user


def staff_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Refuse anyone but staff holding ``registry:publish`` or ``registry:review`` (403); OPTIONS passes."""
    if connection.scope.get("method") == "OPTIONS":
        return
    principal = _principal(connection)
    if not principal.scopes & {PUBLISH, REVIEW}:
        raise Forbidden(
            f"the access token needs {PUBLISH} or {REVIEW}",
            code="scope.insufficient",
            missing_scopes=[PUBLISH, REVIEW],
        )


def index_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The package index's guard: staff holding ``registry:install``, ``registry:review`` or
    ``registry:publish`` (403 otherwise)."""
    principal = _principal(connection)
    if not principal.scopes & {INSTALL, PUBLISH, REVIEW}:
        raise Forbidden(
            f"the access token needs {INSTALL}, {PUBLISH} or {REVIEW}",
            code="scope.insufficient",
            missing_scopes=[INSTALL, PUBLISH, REVIEW],
        )


def installs_all(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """True for staff who may install every approved plugin: ``registry:install`` or ``registry:review``."""
    return bool(_principal(connection).scopes & {INSTALL, REVIEW})


def is_reviewer(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """True for staff holding ``registry:review``."""
    return _principal(connection).has_scopes(REVIEW)


def own_publisher(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The publisher named by the token's ``fulcrum_publisher`` claim, if any."""
    claims = connection.auth
    return claims.publisher if isinstance(claims, AccessTokenClaims) else None


def acting_publisher(connection: ASGIConnection[Any, Any, Any, Any], wanted: str | None = None) -> str:
    """The publisher a ``registry:publish`` token acts for; 403 when it names none or another one."""
    principal = _principal(connection)
    if not principal.has_scopes(PUBLISH):
        raise Forbidden(
            f"the access token lacks the scope(s): {PUBLISH}",
            code="scope.insufficient",
            missing_scopes=[PUBLISH],
        )
    mine = own_publisher(connection)
    if mine is None:
        raise Forbidden(
            "this token names no publisher; mint one with --publisher ID", code="registry.publisher-missing"
        )
    if wanted is not None and wanted != mine:
        raise Forbidden(
            f"this token publishes for {echoed(mine)}, not {echoed(wanted)}",
            code="registry.other-publisher",
            field="publisher",
        )
    return mine
