"""Who may call what, in the OpenAPI document: the OAuth 2 scheme and each operation's scopes.

Every route that is not public takes a Bearer access token holding the scopes its ``opt`` declares
(``auth/middleware.py``). The document says so: one ``oauth2`` security scheme (the authorization
code flow with PKCE for the app, client credentials for partner services; staff tokens come from
``fulcrum token issue``), each protected operation's requirement with its scopes, and its 401 and
403 as the problem details the middleware sends. Public operations carry no requirement. Operations
that also take the token as HTTP Basic ``__token__`` credentials (the package index, for pip) list
the ``tokenBasic`` scheme as an alternative.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fulcrum_sdk.scopes import SCOPES
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Components, OAuthFlow, OAuthFlows, SecurityScheme

from fulcrum_core.auth.basic import TOKEN_AS_BASIC_OPT, TOKEN_USER
from fulcrum_core.auth.guards import declared_scopes
from fulcrum_core.problem_types import ProblemCode, ProblemTypeURI

__all__ = ["BASIC_SCHEME", "SCHEME", "AccessProblem", "document_security", "security_components"]

SCHEME = "oauth2"
"""The name of the security scheme in ``components.securitySchemes``."""
BASIC_SCHEME = "tokenBasic"
"""The scheme of an access token sent as HTTP Basic credentials (``auth.basic``)."""

_TOKEN_KINDS = ("app", "action", "staff")  # scopes a token may carry (placement and data scopes are
# granted to plugins, not to tokens)


class AccessProblem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details of a 401 (no valid token: ``code`` says why, with a
    ``WWW-Authenticate`` challenge) or a 403 (``missing_scopes`` lists what the token lacks)."""

    type: ProblemTypeURI
    title: str
    status: int
    detail: str
    code: ProblemCode
    missing_scopes: list[str] | None = None


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=AccessProblem, description=description, media_type="application/problem+json",
        generate_examples=False,
    )


_UNAUTHORIZED = _problem("No valid access token: missing, malformed, expired or for another audience")
_FORBIDDEN = _problem("The token lacks a scope this operation needs (`missing_scopes`) or is the wrong kind")


def security_components(issuer: str) -> Components:
    """``components`` with the OAuth 2 scheme whose endpoints are under ``issuer``."""
    base = issuer.rstrip("/")
    scopes = {n: s.description.en or s.description.zh_CN for n, s in SCOPES.items() if s.kind in _TOKEN_KINDS}
    return Components(
        security_schemes={
            SCHEME: SecurityScheme(
                type="oauth2",
                description=(
                    "Bearer access tokens (JWT). The app uses the authorization code flow with PKCE; "
                    "partner services use client credentials; staff tokens are issued with "
                    "`fulcrum token issue --staff`."
                ),
                flows=OAuthFlows(
                    authorization_code=OAuthFlow(
                        authorization_url=f"{base}/oauth/authorize", token_url=f"{base}/oauth/token",
                        refresh_url=f"{base}/oauth/token", scopes=scopes,
                    ),
                    client_credentials=OAuthFlow(token_url=f"{base}/oauth/token", scopes=scopes),
                ),
            ),
            BASIC_SCHEME: SecurityScheme(
                type="http",
                scheme="basic",
                description=(
                    f"An access token as the password of the user `{TOKEN_USER}`, as installers send it "
                    f"(`https://{TOKEN_USER}:<token>@host/registry/simple/`, netrc, a keyring)."
                ),
            ),
        }
    )


def document_security(app: Litestar) -> None:
    """Give every protected operation its security requirement (its declared scopes) and its 401 and
    403 (call once the routes are registered and before the schema is first served)."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if not isinstance(handler, HTTPRouteHandler) or not handler.resolve_include_in_schema():
                continue
            if handler.opt.get("public") is True:
                continue
            handler.security = [{SCHEME: sorted(declared_scopes(handler.opt) or ())}]
            if handler.opt.get(TOKEN_AS_BASIC_OPT) is True:
                handler.security.append({BASIC_SCHEME: []})
            responses: dict[int, Any] = dict(handler.responses or {})
            responses.setdefault(401, _UNAUTHORIZED)
            responses.setdefault(403, _FORBIDDEN)
            handler.responses = responses
