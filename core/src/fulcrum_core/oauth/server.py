"""``FulcrumAuthorizationServer``: authlib's ``AuthorizationServer`` over our stores and signer.

Access tokens come from the host's one :class:`~fulcrum_core.auth.tokens.TokenService` (RFC 9068
JWTs, five minutes at most), so the resource server verifies them like any other token. Each
``Runtime`` gets one server, built on first use by :func:`oauth_server`.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any, Final

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidScopeError,
    OAuth2Error,
    UnsupportedGrantTypeError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc6749.authenticate_client import authenticate_client_secret_basic
from authlib.oauth2.rfc6749.util import extract_basic_authorization, scope_to_list
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc9207 import IssuerParameter
from fulcrum_sdk.scopes import APP_SCOPES, SCOPES
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fulcrum_core.auth.principal import PrincipalKind
from fulcrum_core.auth.tokens import TokenService
from fulcrum_core.data.db import Database
from fulcrum_core.oauth.adapter import OAuthResponse, RequestSnapshot, SnapshotRequest
from fulcrum_core.oauth.clients import ClientStore, OAuthClient
from fulcrum_core.oauth.codes import CodeStore
from fulcrum_core.oauth.endpoints import FulcrumIntrospectionEndpoint, FulcrumRevocationEndpoint
from fulcrum_core.oauth.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
    ResourceOwner,
    S256CodeChallenge,
)
from fulcrum_core.oauth.idp import ASSERTION_ALGORITHMS, IdentityProvider
from fulcrum_core.oauth.jwt_bearer import IdpAssertionGrant
from fulcrum_core.oauth.refresh import ConsentEnded, FamilyRevoked, RefreshTokenStore
from fulcrum_core.oauth.refusals import (
    AUTHLIB_VAGUE_CLIENT,
    client_refusal,
    grant_type_refusal,
    response_type_refusal,
    unknown_scope_refusal,
)
from fulcrum_core.oauth.used_ids import AssertionIds, client_slot
from fulcrum_core.runtime import Runtime

__all__ = ["APP_CLIENT_ID", "TOKEN_PATH", "FulcrumAuthorizationServer", "ensure_app_client", "oauth_server"]

log = logging.getLogger("fulcrum.oauth")

TOKEN_PATH: Final = "/oauth/token"  # noqa: S105 - a URL path, not a secret
APP_CLIENT_ID: Final = "fulcrum-app"
"""The mobile app's public client."""
_EXTRA_KEY: Final = "oauth_server"
_BUILD_LOCK = threading.Lock()
_KINDS: Final[dict[str, PrincipalKind]] = {"customer": "customer", "staff": "staff", "client": "client"}
MAX_ASSERTION_SECONDS: Final = 3600
"""How far in the future a client assertion's ``exp`` may lie (RFC 7523 section 3 lets us refuse more);
an hour is what authlib's ``PrivateKeyJWT`` signs by default."""
_MAX_JTI: Final = 256


class _Issuer(IssuerParameter):  # type: ignore[misc]
    """RFC 9207: ``iss`` in every authorization response, errors included."""

    def __init__(self, issuer: str) -> None:
        self._issuer = issuer

    def get_issuer(self) -> str:
        return self._issuer


def _client_secret_basic(query_client: Any, request: Any) -> OAuthClient | None:
    """authlib's ``client_secret_basic``, where credentials that are not UTF-8 fail authentication
    (401 ``invalid_client``) instead of escaping as a ``UnicodeDecodeError`` (a 500)."""
    try:
        client: OAuthClient | None = authenticate_client_secret_basic(query_client, request)
    except UnicodeDecodeError:
        return None
    return client


class _PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt`` (RFC 7523 §2.2): partner backends sign an assertion with their own key.

    Assertion ids are kept in the database (``oauth_assertion_ids``, under ``client:<client_id>``)
    until the assertion expires, so every worker refuses a replay, after a restart too. That lifetime
    is at most ``MAX_ASSERTION_SECONDS``: a longer one would keep its id a long time for nothing. A
    ``client_id`` sent beside the assertion must be its client's (RFC 7521 section 4.2).
    """

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, issuer: str, used_ids: AssertionIds) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self._audiences = [issuer + TOKEN_PATH, issuer]
        self._used_ids = used_ids

    def __call__(self, query_client: Any, request: Any) -> OAuthClient | None:
        client: OAuthClient | None = super().__call__(query_client, request)
        named = request.payload.client_id
        if client is not None and named and named != client.client_id:
            raise InvalidClientError(description="client_id does not name the client of the client assertion")
        return client

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        """authlib's, verifying with every algorithm a partner's key may use: it let joserfc's
        default three (ES256, RS256, HS256) alone, so a key the manifest accepts (P-384, RSA-PSS,
        Ed25519) never authenticated."""
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description=exc.description) from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp > time.time() + MAX_ASSERTION_SECONDS + self.leeway:
            raise InvalidClientError(
                description=f"the client assertion must expire within {MAX_ASSERTION_SECONDS} seconds"
            )
        super().verify_claims(claims)

    def get_audiences(self) -> list[str]:
        return self._audiences

    def validate_jti(self, claims: dict[str, Any], jti: Any) -> bool:
        """Spend the assertion's ``jti`` for its client (called once the signature and ``exp`` verified)."""
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI:
            raise InvalidClientError(
                description=f"the client assertion needs a jti (1 to {_MAX_JTI} characters)"
            )
        expires = datetime.fromtimestamp(claims["exp"], UTC)
        if not self._used_ids.first_use(client_slot(claims["sub"]), jti, expires):
            raise InvalidClientError(
                description="the client assertion was already used (its jti was seen before)"
            )
        return True

    def resolve_client_public_key(self, client: OAuthClient) -> KeySet:
        if not client.jwks or not client.jwks.get("keys"):
            raise InvalidClientError(description="the client has no registered keys")
        try:
            return KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        except (ValueError, KeyError, TypeError) as exc:  # a registered key that does not import
            raise InvalidClientError(description="the client's registered keys are unusable") from exc


class FulcrumAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's server bound to the host's database and token signer."""

    def __init__(
        self,
        db: Database,
        tokens: TokenService,
        *,
        issuer: str,
        refresh_reuse_grace_seconds: int = 0,
        idp: IdentityProvider | None = None,
    ) -> None:
        super().__init__(scopes_supported=sorted(SCOPES))
        self.db = db
        self.idp = idp
        self.tokens = tokens
        self.issuer = issuer
        self.clients = ClientStore(db)
        self.refresh_tokens = RefreshTokenStore(db, reuse_grace_seconds=refresh_reuse_grace_seconds)
        self.codes = CodeStore(db, self.refresh_tokens)
        self.register_token_generator("default", self._generate)
        self.register_client_auth_method("client_secret_basic", _client_secret_basic)
        self._assertions = _PrivateKeyJWT(issuer, AssertionIds(db))
        self.register_client_auth_method("private_key_jwt", self._assertions)
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)
        self.register_grant(ClientCredentialsGrant)
        if idp is not None:
            self.register_grant(IdpAssertionGrant)
        self.register_endpoint(FulcrumRevocationEndpoint)
        self.register_endpoint(FulcrumIntrospectionEndpoint)
        self.register_extension(_Issuer(issuer))

    # -- authlib's framework hooks --------------------------------------------------------------

    def query_client(self, client_id: str) -> OAuthClient | None:
        client = self.clients.get(client_id)
        return client if client is not None and client.active else None

    def create_oauth2_request(self, request: Any) -> SnapshotRequest:
        if isinstance(request, SnapshotRequest):
            return request
        if isinstance(request, RequestSnapshot):
            return SnapshotRequest(request)
        raise TypeError(f"expected a RequestSnapshot, not {type(request).__name__}")

    def handle_response(self, status: int, body: Any, headers: Any) -> OAuthResponse:
        return OAuthResponse(status=status, body=body, headers=list(headers or []))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signals: audit of OAuth events is not wired yet."""

    # -- refusals in words (authlib leaves them bare or vague) ------------------------------------

    def get_token_grant(self, request: SnapshotRequest) -> Any:
        try:
            return super().get_token_grant(request)
        except UnsupportedGrantTypeError as error:
            accepted = {grant.GRANT_TYPE for grant, _ in self._token_grants}
            error.description = grant_type_refusal(request.payload.grant_type, accepted)
            raise

    def get_authorization_grant(self, request: SnapshotRequest) -> Any:
        try:
            return super().get_authorization_grant(request)
        except UnsupportedResponseTypeError as error:
            error.description = response_type_refusal(request.payload.response_type)
            raise

    def authenticate_client(
        self, request: SnapshotRequest, methods: list[str], endpoint: str = "token"
    ) -> Any:
        try:
            return super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as error:
            if (error.description or "").startswith(AUTHLIB_VAGUE_CLIENT):
                client_id, sent_by = self._credentials_sent(request)
                # HTTP Basic naming the client without a secret (``-u plugin-x``): said, not "not current".
                secret_sent = sent_by != "client_secret_basic" or bool(
                    extract_basic_authorization(request.headers)[1]
                )
                error.description = self._client_refusal(client_id, sent_by, methods, secret_sent=secret_sent)
            raise

    def get_consent_grant(self, request: SnapshotRequest | None = None, end_user: Any = None) -> Any:
        try:
            return super().get_consent_grant(request=request, end_user=end_user)
        except InvalidClientError as error:
            if request is not None and (error.description or "").startswith(AUTHLIB_VAGUE_CLIENT):
                error.description = self._client_refusal(request.payload.client_id, None, [])
            raise

    def _credentials_sent(self, request: SnapshotRequest) -> tuple[str | None, str | None]:
        """The client a token-endpoint request names, and how it authenticated (None: not at all)."""
        try:
            basic_id, _secret = extract_basic_authorization(request.headers)
        except UnicodeDecodeError:
            basic_id = None
        if basic_id:
            return basic_id, "client_secret_basic"
        form = request.payload.data
        assertion = form.get("client_assertion")
        if assertion:
            try:
                _headers, claims = self._assertions.extract_assertion(assertion)
            except InvalidClientError:
                claims = {}
            sub = claims.get("sub")
            return form.get("client_id") or (sub if isinstance(sub, str) else None), "private_key_jwt"
        client_id = form.get("client_id")
        return client_id, ("none" if client_id else None)

    def _client_refusal(
        self, client_id: str | None, sent_by: str | None, methods: list[str], *, secret_sent: bool = True
    ) -> str:
        client = self.clients.get(client_id) if client_id else None
        registered = None if client is None else (client.auth_method, client.active, client.kind == "plugin")
        return client_refusal(
            client_id, sent_by=sent_by, registered=registered, accepted=methods, secret_sent=secret_sent
        )

    def validate_requested_scope(self, scope: str | None) -> None:
        unknown = [s for s in scope_to_list(scope or "") or () if s not in SCOPES]
        if unknown:
            raise InvalidScopeError(description=unknown_scope_refusal(unknown, SCOPES))
        super().validate_requested_scope(scope)

    # -- tokens ---------------------------------------------------------------------------------

    def _generate(
        self,
        grant_type: str,
        client: OAuthClient,
        user: ResourceOwner | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        scopes = (scope or "").split()
        if user is not None:
            sub, kind = user.sub, _KINDS[user.kind]
        else:
            sub, kind = client.client_id, ("staff" if client.kind == "staff" else "client")
        ttl = self.tokens.max_ttl_seconds
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": self.tokens.issue(sub, scopes, kind=kind, client_id=client.client_id),
            "expires_in": ttl,
            "scope": " ".join(sorted(set(scopes))),
        }
        if include_refresh_token and user is not None:
            token["refresh_token"] = None  # filled by save_token, which knows the family
        return token

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        if "refresh_token" not in token:
            return
        family = None
        # A refresh asking for fewer scopes narrows its access token only: the new refresh token keeps
        # the presented one's scope (RFC 6749 section 6), or the client would lose the rest of its grant.
        scope = token["scope"]
        if request.refresh_token is not None:
            family = request.refresh_token.family_id
            scope = request.refresh_token.scope
        elif request.authorization_code is not None:
            family = request.authorization_code.family_id
        owner: ResourceOwner = request.user
        try:
            token["refresh_token"] = self.refresh_tokens.issue(
                family_id=family,
                client_id=request.client.client_id,
                subject=owner.sub,
                subject_kind=owner.kind,
                scope=scope,
            )
        except ConsentEnded as exc:
            # The customer's consent behind the family expired or was revoked: saying so tells the client
            # to send the customer through the authorization again rather than retry.
            raise InvalidGrantError(str(exc)) from exc
        except FamilyRevoked as exc:
            # Revoked while this request ran (a replayed code or refresh token): no tokens at all.
            raise InvalidGrantError("this authorization was revoked") from exc

    # -- helpers for the handlers -----------------------------------------------------------------

    def error_response(self, request: SnapshotRequest, error: OAuth2Error) -> OAuthResponse:
        """authlib's error answer, with ``iss`` added when it redirects (RFC 9207 §2)."""
        response: OAuthResponse = self.handle_error_response(request, error)
        if response.location:
            from authlib.common.urls import add_params_to_uri

            response.location = add_params_to_uri(response.location, {"iss": self.issuer})
        return response


def ensure_app_client(clients: ClientStore, redirect_uris: tuple[str, ...]) -> None:
    """Register the mobile app's public client (authorization code + refresh, the app scopes) if absent,
    and give an existing one any app scope it lacks (one added by an upgrade, such as ``pages:read``) and
    exactly the redirect URIs of the setting: one the operator dropped is not redirected to any more."""
    existing = clients.get(APP_CLIENT_ID)
    if existing is not None:
        added = clients.add_scopes(APP_CLIENT_ID, APP_SCOPES)
        if added:
            log.info("the app client may now ask for %s", ", ".join(added))
        new, dropped = clients.set_redirect_uris(APP_CLIENT_ID, redirect_uris)
        if new or dropped:
            log.warning(
                "the app client's redirect URIs follow oauth_app_redirect_uris: added %s; dropped %s",
                ", ".join(new) or "none", ", ".join(dropped) or "none",
            )
        return
    clients.register(
        APP_CLIENT_ID,
        kind="app",
        name_zh="手机银行",
        name_en="Mobile banking app",
        auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        scopes=APP_SCOPES,
        redirect_uris=redirect_uris,
    )


def _identity_provider(runtime: Runtime) -> IdentityProvider | None:
    """The bank's IdP as ``oauth_idp`` configures it, or None when it names none."""
    config = runtime.settings.oauth_idp
    if config.issuer is None:
        return None
    provider = runtime.provider
    return IdentityProvider(
        config,
        issuer=runtime.settings.issuer.rstrip("/"),
        db=runtime.db,
        customer_exists=lambda ref: provider.profile(ref) is not None,
    )


def oauth_server(runtime: Runtime) -> FulcrumAuthorizationServer:
    """The runtime's authorization server, built once (thread-safe) on first use."""
    server = runtime.extras.get(_EXTRA_KEY)
    if server is None:
        with _BUILD_LOCK:
            server = runtime.extras.get(_EXTRA_KEY)
            if server is None:
                server = FulcrumAuthorizationServer(
                    runtime.db,
                    runtime.tokens,
                    issuer=runtime.settings.issuer.rstrip("/"),
                    refresh_reuse_grace_seconds=runtime.settings.refresh_reuse_grace_seconds,
                    idp=_identity_provider(runtime),
                )
                ensure_app_client(server.clients, runtime.settings.oauth_app_redirect_uris)
                runtime.extras[_EXTRA_KEY] = server
    assert isinstance(server, FulcrumAuthorizationServer)  # noqa: S101 - only this function stores it
    return server
