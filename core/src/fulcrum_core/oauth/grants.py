"""The grants the server offers, as authlib grant subclasses; implicit and password are absent.

- Authorization code with PKCE: ``S256`` only, and required for every client, public or not
  (authlib's default accepts ``plain`` and requires PKCE only from public clients).
- Refresh token: every use rotates the token; reusing a rotated one revokes its family, except for
  a repeat by its own client within the rotation grace period (see ``fulcrum_core.oauth.refresh``).
- Client credentials: for plugin backends and staff tools, never beyond the client's scopes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import msgspec
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, InvalidScopeError, grants
from authlib.oauth2.rfc7636 import CodeChallenge

from fulcrum_core.oauth.codes import AuthorizationCode
from fulcrum_core.oauth.refusals import described, sent

if TYPE_CHECKING:
    from fulcrum_core.oauth.server import FulcrumAuthorizationServer

__all__ = [
    "QUERY_WORDS",
    "TOKEN_AUTH_METHODS",
    "AuthorizationCodeGrant",
    "ClientCredentialsGrant",
    "RefreshTokenGrant",
    "ResourceOwner",
    "S256CodeChallenge",
]

TOKEN_AUTH_METHODS: list[str] = ["client_secret_basic", "private_key_jwt", "none"]
"""How clients authenticate at the token, revocation and introspection endpoints."""


class ResourceOwner(msgspec.Struct, frozen=True):
    """Whose data a token is for: a customer number (or a partner's pairwise id) and the token kind;
    ``consent_id``: the consent the customer has just given, which the authorization's tokens rest on."""

    sub: str
    kind: str
    consent_id: str | None = None


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE with ``S256`` only, required from every client at both endpoints."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    CODE_CHALLENGE_METHODS: ClassVar[dict[str, Any]] = {"S256": CodeChallenge.CODE_CHALLENGE_METHODS["S256"]}

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send 'code_challenge' with method S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256 ('plain' is not accepted)")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        code: AuthorizationCode = grant.request.authorization_code
        verifier = grant.request.form.get("code_verifier")
        if not code.code_challenge and verifier:
            raise InvalidRequestError("the authorization request had no 'code_challenge' for this verifier")
        if not verifier:
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)


QUERY_WORDS = "{} (RFC 6749 section 4.1.1: the request's parameters are UTF-8, percent-encoded)"
"""How an authorization request's query parameter that is no text is refused (``invalid_request``)."""


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """Authorization code: codes saved hashed for 60 seconds and redeemed exactly once."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = TOKEN_AUTH_METHODS
    server: FulcrumAuthorizationServer

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: Any) -> str:
        """authlib's check, naming the refused URI safely quoted: authlib's own description quotes it
        as sent, and one with a ``"``, a ``\\`` or non-ASCII broke it (a 500, not the refusal)."""
        uri = request.payload.redirect_uri
        if uri and not client.check_redirect_uri(uri):
            raise InvalidRequestError(f"Redirect URI {sent(uri)} is not supported by client.")
        checked: str = grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)
        # The first point where the redirect URI is trusted: a query parameter that is no text (another
        # than the client's id and redirect URI, refused before: ``authorize.prepare``) goes back there.
        refused = getattr(getattr(request, "snapshot", None), "query_refused", None)
        if refused is not None:
            raise InvalidRequestError(described(QUERY_WORDS.format(refused[1])), redirect_uri=checked)
        return checked

    def validate_requested_scope(self) -> None:
        """Known scopes (the server's check), and then only the client's: authlib's refusal of a scope
        beyond the client's grant named nothing ("invalid, unknown, or malformed")."""
        super().validate_requested_scope()
        scope = self.request.payload.scope
        client = self.request.client
        if scope and client is not None and client.get_allowed_scope(scope) is None:
            raise InvalidScopeError(description=client.beyond_grant(scope))

    def save_authorization_code(self, code: str, request: Any) -> None:
        owner: ResourceOwner = request.user
        self.server.codes.save(
            code,
            client_id=request.client.client_id,
            subject=owner.sub,
            subject_kind=owner.kind,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            code_challenge=request.payload.data.get("code_challenge", ""),
            code_challenge_method=request.payload.data.get("code_challenge_method", ""),
            consent_id=owner.consent_id,
        )

    def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
        return self.server.codes.redeem(code, client.client_id)

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Nothing to do: redemption already marked the code used (keeping it detects replays)."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> ResourceOwner:
        return ResourceOwner(authorization_code.subject, authorization_code.subject_kind)


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """Refresh token with rotation: the presented token is spent, a new one of the family returned.

    Within the rotation grace period its client may present a spent token again (a concurrent
    refresh, or a retry whose answer was lost) and gets another new token of the same family.
    """

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: FulcrumAuthorizationServer

    def _validate_request_token(self, client: Any) -> Any:
        presented = self.request.form.get("refresh_token")
        if not presented:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        # Check the scope before spending the token: an escalation attempt leaves it usable. A token
        # that may not be used is spent unchecked, so a reuse is detected whatever scope it asks for.
        store = self.server.refresh_tokens
        known = store.find(presented)
        if known is not None and store.may_rotate(known, client.client_id):
            self._validate_token_scope(known)
        return self._spend(presented, client, known)

    def _validate_token_scope(self, token: Any) -> None:
        """No more than the token's own scope, naming what is beyond it (authlib's words named nothing)."""
        scope = self.request.payload.scope
        held = set(token.get_scope().split())
        beyond = sorted(set(scope.split()) - held) if scope else []
        if beyond:
            raise InvalidScopeError(
                description=f"the refresh token was not issued for {', '.join(beyond)}; ask for no more "
                f"than its scope: {', '.join(sorted(held)) or 'none'}"
            )

    def _spend(self, presented: str, client: Any, known: Any) -> Any:
        store = self.server.refresh_tokens
        token = store.rotate(presented, client_id=client.client_id)
        if token is None or not token.check_client(client):
            # Its own client is told when the consent behind the token ended (the token expired with
            # it, or was revoked with it): the plain words would send it to refresh again in vain.
            ended = None
            if known is not None and known.check_client(client):
                ended = store.consent_ended(known.family_id)
            raise InvalidGrantError(
                ended or "the refresh token is invalid, expired, revoked or was already used"
            )
        return token

    def authenticate_refresh_token(self, refresh_token: str) -> Any:  # pragma: no cover - see above
        return self.server.refresh_tokens.rotate(refresh_token, client_id=self.request.client.client_id)

    def authenticate_user(self, refresh_token: Any) -> ResourceOwner:
        return ResourceOwner(refresh_token.subject, refresh_token.subject_kind)

    def revoke_old_credential(self, refresh_token: Any) -> None:
        """Nothing to do: ``rotate`` already spent it."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    """Client credentials for confidential clients, refused beyond the client's granted scopes."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["client_secret_basic", "private_key_jwt"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        allowed = self.request.client.get_allowed_scope(self.request.payload.scope)
        if allowed is None:
            raise InvalidScopeError(self.request.client.beyond_grant(self.request.payload.scope))
        self.request.scope = allowed

    def create_token_response(self) -> tuple[int, Any, Any]:
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER
