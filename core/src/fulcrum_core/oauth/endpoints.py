"""Token revocation (RFC 7009) and introspection (RFC 7662) as authlib endpoints.

Refresh tokens are revocable (revoking one revokes its family). Access tokens are self-contained
JWTs living five minutes at most: revoking one answers 200 as RFC 7009 §2.2 allows and the token
runs out on its own. Introspection reports an access token by its signature and claims.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from fulcrum_core.auth.tokens import VerifiedToken
from fulcrum_core.errors import Unauthorized
from fulcrum_core.oauth.grants import TOKEN_AUTH_METHODS
from fulcrum_core.oauth.refresh import RefreshToken

if TYPE_CHECKING:
    from fulcrum_core.oauth.server import FulcrumAuthorizationServer

__all__ = ["AccessTokenRecord", "FulcrumIntrospectionEndpoint", "FulcrumRevocationEndpoint"]


class AccessTokenRecord(msgspec.Struct, frozen=True):
    """A verified access token as authlib's endpoints see it (``TokenMixin``)."""

    verified: VerifiedToken

    def check_client(self, client: Any) -> bool:
        return getattr(client, "client_id", None) == self.verified.claims.client_id

    def get_scope(self) -> str:
        return self.verified.claims.scope

    def is_expired(self) -> bool:
        return False  # verification already refused expired tokens

    def is_revoked(self) -> bool:
        return False


def _token_sent(request: Any, action: str) -> None:
    """``invalid_request`` naming ``token`` when it is missing (authlib's answer named nothing)."""
    if "token" not in request.form:
        raise InvalidRequestError(
            description=f"the token to {action} is missing: send it as the form parameter 'token'"
        )


def _find(server: FulcrumAuthorizationServer, token: str, hint: str | None) -> Any:
    """The refresh-token record or verified access token ``token`` names, whatever the hint says."""
    looks_like_jwt = token.count(".") == 2
    if hint != "access_token" or not looks_like_jwt:
        record = server.refresh_tokens.find(token)
        if record is not None or not looks_like_jwt:
            return record
    try:
        return AccessTokenRecord(server.tokens.verify_token(token))
    except Unauthorized:
        return None


class FulcrumRevocationEndpoint(RevocationEndpoint):  # type: ignore[misc]
    """``POST /oauth/revoke``: a client revokes its own refresh token (and with it, the family)."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = TOKEN_AUTH_METHODS
    server: FulcrumAuthorizationServer

    def check_params(self, request: Any, client: Any) -> None:
        _token_sent(request, "revoke")
        super().check_params(request, client)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return _find(self.server, token_string, token_type_hint)

    def revoke_token(self, token: Any, request: Any) -> None:
        if isinstance(token, RefreshToken):
            self.server.refresh_tokens.revoke_family(token.family_id)


class FulcrumIntrospectionEndpoint(IntrospectionEndpoint):  # type: ignore[misc]
    """``POST /oauth/introspect``: a confidential client asks about a token it holds or protects."""

    CLIENT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "private_key_jwt"]
    server: FulcrumAuthorizationServer

    def check_params(self, request: Any, client: Any) -> None:
        _token_sent(request, "introspect")
        super().check_params(request, client)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Any:
        return _find(self.server, token_string, token_type_hint)

    def check_permission(self, token: Any, client: Any, request: Any) -> bool:
        # Staff tools (resource servers) may ask about any token; other clients only about theirs.
        return bool(client.kind == "staff" or token.check_client(client))

    def introspect_token(self, token: Any) -> dict[str, Any]:
        if isinstance(token, RefreshToken):
            return {
                "active": True,
                "client_id": token.client_id,
                "scope": token.scope,
                "sub": token.subject,
                "token_type": "refresh_token",
                "exp": int(token.expires_at.timestamp()),
                "iss": self.server.tokens.issuer,
            }
        claims = token.verified.claims
        return {
            "active": True,
            "client_id": claims.client_id,
            "scope": claims.scope,
            "sub": claims.sub,
            "token_type": "Bearer",
            "exp": claims.exp,
            "iat": claims.iat,
            "aud": claims.aud,
            "iss": claims.iss,
            "jti": claims.jti,
        }
