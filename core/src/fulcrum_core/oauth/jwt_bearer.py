"""The JWT bearer grant (RFC 7523 §2.1): the app trades the bank's login for Fulcrum's tokens.

authlib's ``JWTBearerGrant`` does the checks (signature, ``iss``, ``aud``, ``exp``); here the
assertion's issuer is the bank's identity provider, not the client, so the client authenticates
as at every other grant (the app: a public client, its ``client_id``) and must be one that
``oauth_idp.clients`` names. The answer is what the code flow gives: an access token and a refresh
token of a new family, for the scopes asked (the client's when none are), never beyond the client's.
The same checks sign a customer in to the consent page (:func:`verify_assertion`).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc7523 import JWTBearerGrant
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fulcrum_core.oauth.grants import TOKEN_AUTH_METHODS, ResourceOwner
from fulcrum_core.oauth.idp import ASSERTION_ALGORITHMS, MAX_SUBJECT_LENGTH, IdentityProvider, IdpKeyError

if TYPE_CHECKING:
    from fulcrum_core.oauth.adapter import SnapshotRequest
    from fulcrum_core.oauth.server import FulcrumAuthorizationServer

__all__ = ["JWT_BEARER", "IdpAssertionGrant", "verify_assertion"]

log = logging.getLogger("fulcrum.oauth")

JWT_BEARER = JWTBearerGrant.GRANT_TYPE
_MAX_JTI = 256


class IdpAssertionGrant(JWTBearerGrant):  # type: ignore[misc]
    """``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`` with an assertion of the bank's IdP."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = TOKEN_AUTH_METHODS
    LEEWAY = 30
    server: FulcrumAuthorizationServer
    _kid: str | None = None

    @property
    def idp(self) -> IdentityProvider:
        idp = self.server.idp
        if idp is None:  # the grant is registered only with an IdP
            raise InvalidGrantError(description="no identity provider is configured")
        return idp

    # -- the token request ----------------------------------------------------------------------

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if client.client_id not in self.idp.clients or client.is_partner:
            raise UnauthorizedClientError(
                description=f"client {client.client_id!r} may not use the jwt-bearer grant "
                "(oauth_idp.clients names the first-party clients that may)"
            )
        self.request.client = client
        # The scope is checked before the assertion is, so a refused request leaves it usable.
        self.validate_requested_scope()
        allowed = client.get_allowed_scope(self.request.payload.scope)
        if allowed is None:
            raise InvalidScopeError(description=client.beyond_grant(self.request.payload.scope))
        assertion = self.request.form.get("assertion")
        if not assertion:
            raise InvalidRequestError(description="Missing 'assertion' in request")
        claims = self.process_assertion_claims(assertion)
        self.request.scope = allowed
        self.request.user = self.authenticate_user(claims["sub"])

    def create_token_response(self) -> tuple[int, Any, Any]:
        token = self.generate_token(scope=self.request.scope, user=self.request.user)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER

    # -- authlib's hooks --------------------------------------------------------------------------

    def extract_assertion(self, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
        headers, claims = super().extract_assertion(assertion)
        kid = headers.get("kid")
        self._kid = kid if isinstance(kid, str) else None
        return headers, claims

    def resolve_issuer_client(self, issuer: str) -> IdentityProvider:
        if issuer != self.idp.issuer:
            raise InvalidGrantError(
                description="the assertion's iss is not the bank's identity provider (oauth_idp.issuer)"
            )
        return self.idp

    def resolve_client_public_key(self, client: IdentityProvider) -> KeySet:
        try:
            return client.key_set(self._kid)
        except IdpKeyError as exc:
            # The operator's settings, not the client, are wrong: a 503 to retry, the cause in the log.
            log.error("%s", exc)
            raise OAuth2Error(
                error="temporarily_unavailable",
                description="the identity provider's keys cannot be read; try again later",
                status_code=503,
            ) from exc

    def get_audiences(self) -> list[str]:
        return self.idp.audiences

    def process_assertion_claims(self, assertion: str) -> Any:
        """authlib's, verifying with every algorithm the IdP's keys may sign with: it let joserfc's
        default three (ES256, RS256, HS256) alone, so an IdP signing EdDSA, ES384 or PS256 was refused."""
        _headers, claims = self.extract_assertion(assertion)
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise InvalidGrantError(description="the assertion needs its issuer (iss)")
        key = self.resolve_client_public_key(self.resolve_issuer_client(issuer))
        try:
            token = jwt.decode(assertion, key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidGrantError(description=exc.description) from exc
        except ValueError:
            raise InvalidGrantError(description="the assertion is not a signed JWT") from None
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        """authlib's checks, then: a short lifetime, a customer number in ``sub``, a ``jti`` used once."""
        super().verify_claims(claims)
        idp = self.idp
        exp = claims["exp"]
        if exp > time.time() + idp.max_assertion_seconds + self.LEEWAY:
            raise InvalidGrantError(
                description=f"the assertion must expire within {idp.max_assertion_seconds} seconds (exp)"
            )
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT_LENGTH:
            raise InvalidGrantError(
                description="the assertion's sub must be the customer number "
                f"(1 to {MAX_SUBJECT_LENGTH} characters)"
            )
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
            raise InvalidGrantError(description=f"the assertion needs a jti (1 to {_MAX_JTI} characters)")
        if not idp.assertion_ids.first_use(idp.issuer, jti, datetime.fromtimestamp(exp, UTC)):
            raise InvalidGrantError(description="the assertion was already used (its jti was seen before)")

    def authenticate_user(self, subject: str) -> ResourceOwner:
        if not self.idp.customer_exists(subject):
            raise InvalidGrantError(description="the assertion's sub names no customer of the bank")
        return ResourceOwner(subject, "customer")

    def has_granted_permission(self, client: Any, user: Any) -> bool:  # pragma: no cover - not called
        return True


def verify_assertion(server: FulcrumAuthorizationServer, request: SnapshotRequest, assertion: str) -> str:
    """The customer number an IdP ``assertion`` names, after every check the grant makes (its ``jti``
    is spent); raises ``InvalidGrantError`` saying what is wrong."""
    grant = IdpAssertionGrant(request, server)
    claims = grant.process_assertion_claims(assertion)
    owner = grant.authenticate_user(claims["sub"])
    return owner.sub
