"""Issue and verify access tokens: RFC 9068 JWTs signed with our asymmetric keys (joserfc).

The one signer and verifier of the host: ``fulcrum token issue``, the middleware and the OAuth
server all go through ``TokenService``, so every token is checked the same way.

Verification refuses, with a precise ``Unauthorized.code``:

    token.missing         no token at all
    token.malformed       not a compact JWS, not ``typ: at+jwt``, no ``kid``, ``crit`` present,
                          a required claim absent or of the wrong type, a lifetime above the maximum
    token.bad_alg         ``alg`` is not asymmetric (``none``, ``HS256``…) or not the alg of the key
    token.bad_signature   unknown ``kid``, or the signature does not verify with *our* key (``jwk``,
                          ``jku``, ``x5u`` and ``x5c`` headers are never used to find a key)
    token.expired         ``exp`` is past
    token.not_yet_valid   ``nbf`` or ``iat`` is in the future
    token.wrong_issuer    ``iss`` is not this host's issuer
    token.wrong_audience  ``aud`` does not include the expected audience

Verified tokens are remembered (bounded, until they expire or the key set changes), so a client
reusing its token pays for one signature check rather than one per request.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, get_args

import msgspec
from fulcrum_sdk.scopes import SCOPES
from joserfc import jws
from joserfc.errors import (
    ClaimError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwt import ClaimsOption, JWTClaimsRegistry

from fulcrum_core.auth.claims import ACCESS_TOKEN_TYPES, TOKEN_TYPE, AccessTokenClaims
from fulcrum_core.auth.keys import SUPPORTED_ALGORITHMS, KeyStore
from fulcrum_core.auth.principal import Principal, PrincipalKind
from fulcrum_core.errors import Unauthorized
from fulcrum_core.parameter_problems import echoed

if TYPE_CHECKING:
    from fulcrum_core.settings import Settings

__all__ = ["DEFAULT_LEEWAY_SECONDS", "MAX_TOKEN_BYTES", "TokenService", "VerifiedToken"]

MAX_TOKEN_BYTES: Final = 8192
"""Longer strings are refused before any parsing (our tokens are well under 1 KiB)."""

_KINDS: Final = frozenset(get_args(PrincipalKind))
_CACHE_SIZE: Final = 4096


class VerifiedToken(msgspec.Struct, frozen=True):
    """A token that passed every check: who it names and what it says."""

    principal: Principal
    claims: AccessTokenClaims


def _fail(code: str, detail: str) -> Unauthorized:
    return Unauthorized(detail, code=code)


DEFAULT_LEEWAY_SECONDS: Final = 5
"""How far past ``exp`` a token is still accepted, for clocks that differ between hosts."""


class TokenService:
    """Signs access tokens with the key store's current key and verifies them against the key set."""

    def __init__(
        self,
        keys: KeyStore,
        *,
        issuer: str,
        audience: str,
        max_ttl_seconds: int,
        leeway_seconds: int = DEFAULT_LEEWAY_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.max_ttl_seconds = max_ttl_seconds
        self.leeway_seconds = leeway_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[VerifiedToken, tuple[int, int, int, int]]] = {}
        self._cache_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> TokenService:
        """The service for ``settings``: keys from ``state_dir`` (created on first use), its issuer,
        audience and maximum lifetime. Every worker and the CLI on one ``state_dir`` agree."""
        return cls(
            KeyStore.open(settings.state_dir),
            issuer=settings.issuer,
            audience=settings.audience,
            max_ttl_seconds=settings.access_token_ttl_seconds,
            clock=clock,
        )

    # -- issuing ---------------------------------------------------------------------------------

    def issue(
        self,
        sub: str,
        scopes: Iterable[str],
        *,
        kind: PrincipalKind = "customer",
        client_id: str = "fulcrum-dev",
        audience: str | None = None,
        ttl_seconds: int | None = None,
        publisher: str | None = None,
    ) -> str:
        """A signed access token for ``sub`` carrying ``scopes`` (``publisher``: the registry publisher
        a staff token publishes for, in the ``fulcrum_publisher`` claim).

        Raises ``ValueError`` for an empty subject or client id, an unknown kind or scope, a staff
        scope in a non-staff token, or a lifetime outside 1..``max_ttl_seconds``.
        """
        if not sub or not isinstance(sub, str):
            raise ValueError("sub must be a non-empty string")
        if not client_id:
            raise ValueError("client_id must be a non-empty string")
        if kind not in _KINDS:
            raise ValueError(f"unknown principal kind {kind!r}; use one of {sorted(_KINDS)}")
        granted = sorted(set(scopes))
        for name in granted:
            scope = SCOPES.get(name)
            if scope is None:
                raise ValueError(f"unknown scope {name!r}")
            if scope.kind == "staff" and kind != "staff":
                raise ValueError(f"scope {name!r} is for staff tokens only, not {kind} tokens")
        if publisher is not None and (kind != "staff" or not publisher):
            raise ValueError("a publisher claim is for staff tokens only and must not be empty")
        ttl = self.max_ttl_seconds if ttl_seconds is None else ttl_seconds
        if not 1 <= ttl <= self.max_ttl_seconds:
            raise ValueError(f"ttl_seconds must be between 1 and {self.max_ttl_seconds}, not {ttl}")
        now = int(self._clock())
        claims = AccessTokenClaims(
            iss=self.issuer,
            sub=sub,
            aud=audience or self.audience,
            exp=now + ttl,
            iat=now,
            nbf=now,
            jti=secrets.token_urlsafe(16),
            client_id=client_id,
            scope=" ".join(granted),
            kind=kind,
            publisher=publisher,
        )
        key = self.keys.signing_key()
        alg = str(key.alg)
        header = {"alg": alg, "typ": TOKEN_TYPE, "kid": str(key.kid)}
        return jws.serialize_compact(header, msgspec.json.encode(claims), key, algorithms=[alg])

    def warm(self) -> None:
        """Sign and verify one throwaway token, so a fresh worker's first request does not pay for the
        signing libraries' lazily loaded backends (≈ 40 ms on a loaded machine); nothing is kept."""
        self._verify_uncached(self.issue("warm-up:nobody", (), ttl_seconds=1), self.audience)

    # -- verifying -------------------------------------------------------------------------------

    def verify(self, token: str, *, audience: str | None = None) -> Principal:
        """The principal of a valid ``token`` for ``audience`` (default: this service's audience).

        Raises ``Unauthorized`` with one of the codes in the module docstring.
        """
        return self.verify_token(token, audience=audience).principal

    def verify_token(self, token: str, *, audience: str | None = None) -> VerifiedToken:
        """Like ``verify`` but also returns the claims (what the middleware puts in ``request.auth``)."""
        expected_aud = audience or self.audience
        if not token:
            raise _fail("token.missing", "no access token was sent")
        version = self.keys.version
        hit = self._cache.get((token, expected_aud))
        if hit is not None:
            verified, seen_version = hit
            if seen_version == version and verified.claims.exp > self._clock() - self.leeway_seconds:
                return verified
        verified = self._verify_uncached(token, expected_aud)
        self._remember((token, expected_aud), verified, self.keys.version)
        return verified

    def _remember(
        self, key: tuple[str, str], verified: VerifiedToken, version: tuple[int, int, int, int]
    ) -> None:
        with self._cache_lock:
            if len(self._cache) >= _CACHE_SIZE:
                # Oldest first: dicts keep insertion order, and old entries are the nearest to expiry.
                for stale in list(self._cache)[: _CACHE_SIZE // 4]:
                    del self._cache[stale]
            self._cache[key] = (verified, version)

    def _verify_uncached(self, token: str, audience: str) -> VerifiedToken:
        if len(token) > MAX_TOKEN_BYTES:
            raise _fail("token.malformed", f"the token is longer than {MAX_TOKEN_BYTES} bytes")
        try:
            obj = jws.extract_compact(token.encode("ascii"))
            header = obj.headers()
        except (JoseError, ValueError, TypeError) as exc:
            raise _fail("token.malformed", "the token is not a compact JWS") from exc
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
            accepted = " or ".join(sorted(SUPPORTED_ALGORITHMS))
            shown = repr(alg)[:24]  # attacker-supplied: never echo much of it
            raise _fail("token.bad_alg", f"alg {shown} is not accepted; tokens are signed with {accepted}")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise _fail("token.malformed", f"typ must be {TOKEN_TYPE!r}: this JWT is not an access token")
        if "crit" in header:
            raise _fail("token.malformed", "critical header extensions are not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise _fail("token.malformed", "the token header has no kid")
        key = self.keys.verification_key(kid)
        if key is None:
            raise _fail("token.bad_signature", "the token was not signed by a key of this issuer")
        if alg != key.alg:
            raise _fail("token.bad_alg", f"alg {alg!r} does not match the signing key's {key.alg!r}")
        try:
            valid = jws.validate_compact(obj, key, algorithms=[alg])
        except JoseError as exc:
            raise _fail("token.bad_signature", "the token signature does not verify") from exc
        if not valid:
            raise _fail("token.bad_signature", "the token signature does not verify")
        claims = self._check_claims(obj.payload or b"", audience)
        return VerifiedToken(
            principal=Principal(
                sub=claims.sub,
                client_id=claims.client_id,
                scopes=claims.scopes,
                kind=claims.kind,
                token_id=claims.jti,
                expires_at=claims.exp,
            ),
            claims=claims,
        )

    def _check_claims(self, payload: bytes, audience: str) -> AccessTokenClaims:
        try:
            raw: Any = msgspec.json.decode(payload)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise _fail("token.malformed", "the token payload is not JSON") from exc
        if not isinstance(raw, dict):
            raise _fail("token.malformed", "the token payload is not a JSON object")
        # Shapes first (msgspec), so a time-claim failure below can only mean "not now".
        try:
            claims = msgspec.convert(raw, AccessTokenClaims)
        except msgspec.ValidationError as exc:
            raise _fail("token.malformed", f"bad claims: {exc}") from exc
        essential: ClaimsOption = {"essential": True}
        registry = JWTClaimsRegistry(
            now=int(self._clock()),
            leeway=self.leeway_seconds,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": audience},
            sub=essential,
            exp=essential,
            iat=essential,
            jti=essential,
            client_id=essential,
        )
        try:
            registry.validate(raw)
        except ExpiredTokenError as exc:
            raise _fail("token.expired", "the token has expired") from exc
        except MissingClaimError as exc:
            raise _fail("token.malformed", f"the token lacks the claim(s) {exc.claim}") from exc
        except InvalidClaimError as exc:
            raise _claim_failure(exc, str(raw.get("iss")), self.issuer) from exc
        except ClaimError as exc:
            raise _fail("token.malformed", exc.description) from exc
        if claims.exp - claims.iat > self.max_ttl_seconds:
            raise _fail("token.malformed", f"the token lives longer than {self.max_ttl_seconds} seconds")
        return claims


def _claim_failure(exc: InvalidClaimError, sent_issuer: str, issuer: str) -> Unauthorized:
    """Name the claim that failed: issuer and audience mismatches and not-yet-valid get their own code;
    a wrong issuer names both, the token's and this host's, and where to get one this host accepts (a
    `fulcrum token issue` run without the demo's FULCRUM_ISSUER signs for the default port)."""
    if exc.claim == "iss":
        return _fail(
            "token.wrong_issuer", f"the token was issued by {echoed(sent_issuer)}, not by this host's issuer "
            f"{issuer!r}; get one from this host ({issuer}/oauth/token, or `fulcrum token issue` with "
            f"FULCRUM_ISSUER={issuer})",
        )
    if exc.claim == "aud":
        return _fail("token.wrong_audience", "the token is not meant for this audience")
    if exc.claim in ("nbf", "iat"):  # types were checked before, so only the time can be wrong
        return _fail("token.not_yet_valid", "the token is not valid yet")
    return _fail("token.malformed", f"the claim {exc.claim!r} is invalid")
