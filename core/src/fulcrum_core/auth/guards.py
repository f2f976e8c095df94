"""Route authorization: every route declares ``public=True`` or the scopes it needs, or it is refused.

A handler declares through litestar's ``opt`` (on the handler or any layer above it)::

    @get("/v1/home", opt={"scopes": ["home:read"]})
    @get("/healthz", opt={"public": True})

``opt["scopes"] = []`` means "any valid token". A route declaring neither is a mistake and fails
closed with 403 ``route.undeclared``, so forgetting a declaration can never open a route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fulcrum_core.auth.principal import Principal
from fulcrum_core.errors import Forbidden

__all__ = ["PUBLIC_OPT", "SCOPES_OPT", "check_route_access", "check_scopes", "declared_scopes", "is_public"]

PUBLIC_OPT: Final = "public"
SCOPES_OPT: Final = "scopes"


def is_public(opt: Mapping[str, Any]) -> bool:
    """True when a handler's ``opt`` marks it public (exactly ``True``; other truthy values do not count)."""
    return opt.get(PUBLIC_OPT) is True


def declared_scopes(opt: Mapping[str, Any]) -> frozenset[str] | None:
    """The scopes a handler's ``opt`` requires; ``None`` when it declares none or declares them wrongly
    (a bare string would otherwise be read letter by letter)."""
    scopes = opt.get(SCOPES_OPT)
    if isinstance(scopes, list | tuple | set | frozenset) and all(isinstance(s, str) for s in scopes):
        return frozenset(scopes)
    return None


def check_route_access(principal: Principal, opt: Mapping[str, Any]) -> None:
    """Raise ``Forbidden`` unless ``principal`` holds every scope the route's ``opt`` declares."""
    check_scopes(principal, declared_scopes(opt))


def check_scopes(principal: Principal, required: frozenset[str] | None) -> None:
    """Raise ``Forbidden`` unless ``principal`` holds every scope of ``required`` (``None``: the route
    declared nothing usable, which always fails closed).

    The 403 problem lists ``missing_scopes`` and carries an RFC 6750 ``insufficient_scope`` challenge.
    """
    if required is None:
        raise Forbidden(
            "this route declares neither public access nor the scopes it needs; refusing by default",
            code="route.undeclared",
        )
    if required <= principal.scopes:
        return
    missing = principal.missing_scopes(required)
    if missing:
        needed = " ".join(sorted(required))
        raise Forbidden(
            f"the access token lacks the scope(s): {', '.join(missing)}",
            code="scope.insufficient",
            missing_scopes=missing,
            headers={
                "WWW-Authenticate": (
                    f'Bearer error="insufficient_scope", '
                    f'error_description="missing scope: {" ".join(missing)}", scope="{needed}"'
                )
            },
        )
