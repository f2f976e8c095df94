"""Authorization server metadata (RFC 8414), checked with authlib's own validator."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from fulcrum_sdk.scopes import SCOPES

from fulcrum_core.oauth.idp import ASSERTION_ALGORITHMS
from fulcrum_core.oauth.jwt_bearer import JWT_BEARER

__all__ = ["server_metadata"]


def server_metadata(issuer: str, *, jwt_bearer: bool = False) -> dict[str, Any]:
    """The metadata document for ``issuer`` (no trailing slash), with the JWT bearer grant when the
    bank's identity provider is configured; raises ``ValueError`` if invalid."""
    grants = ["authorization_code", "refresh_token", "client_credentials"]
    if jwt_bearer:
        grants.append(JWT_BEARER)
    auth_methods = ["client_secret_basic", "private_key_jwt", "none"]
    signing = list(ASSERTION_ALGORITHMS)
    metadata = AuthorizationServerMetadata(
        issuer=issuer,
        authorization_endpoint=f"{issuer}/oauth/authorize",
        token_endpoint=f"{issuer}/oauth/token",
        jwks_uri=f"{issuer}/oauth/jwks",
        revocation_endpoint=f"{issuer}/oauth/revoke",
        introspection_endpoint=f"{issuer}/oauth/introspect",
        scopes_supported=sorted(SCOPES),
        response_types_supported=["code"],
        response_modes_supported=["query"],
        grant_types_supported=grants,
        token_endpoint_auth_methods_supported=auth_methods,
        token_endpoint_auth_signing_alg_values_supported=signing,
        revocation_endpoint_auth_methods_supported=auth_methods,
        revocation_endpoint_auth_signing_alg_values_supported=signing,
        introspection_endpoint_auth_methods_supported=["client_secret_basic", "private_key_jwt"],
        introspection_endpoint_auth_signing_alg_values_supported=signing,
        code_challenge_methods_supported=["S256"],
        authorization_response_iss_parameter_supported=True,
        ui_locales_supported=["zh-CN", "en"],
    )
    metadata.validate()
    return dict(metadata)
