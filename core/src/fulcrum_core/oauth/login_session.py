"""The consent page's customer login: a short-lived cookie set from an identity-provider assertion.

The app's webview posts the bank IdP's assertion to ``/oauth/login``; once it verifies, the browser
gets an ``HttpOnly`` cookie holding a JWT that this host signs with its token key set, for
``oauth_idp.login_seconds``. Its own ``typ`` and audience keep it from passing as an access token
(and an access token from passing as it), and every worker verifies it with the shared keys.
``POST /oauth/logout`` ends it before it expires: the cookie's ``jti`` is recorded as signed out in
the shared used-ids table (:class:`SignOuts`), so every worker refuses a copy taken before.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import msgspec
from joserfc import jws
from joserfc.errors import JoseError

from fulcrum_core.auth.keys import KeyStore
from fulcrum_core.data.db import Database
from fulcrum_core.oauth.used_ids import AssertionIds

__all__ = ["LOGIN_PATH", "LOGOUT_PATH", "LoginClaims", "SignOuts", "cookie_name", "read", "sign", "verify"]

LOGIN_PATH: Final = "/oauth/login"
LOGOUT_PATH: Final = "/oauth/logout"
_TYP: Final = "fulcrum-login+jwt"
_MAX_BYTES: Final = 2048


class LoginClaims(msgspec.Struct, frozen=True):
    """Who signed in to the consent page, for which issuer, until when."""

    iss: str
    aud: str
    sub: str
    iat: int
    exp: int
    jti: str


def cookie_name(issuer: str) -> str:
    """The login cookie: ``__Host-`` prefixed (unsettable by sibling hosts) when the issuer is https."""
    return "__Host-fulcrum-login" if issuer.lower().startswith("https://") else "fulcrum-login"


def _audience(issuer: str) -> str:
    return issuer.rstrip("/") + "/oauth/authorize"


def sign(keys: KeyStore, *, issuer: str, customer_ref: str, seconds: int, now: float | None = None) -> str:
    """The cookie value naming ``customer_ref`` as signed in for ``seconds``."""
    at = int(time.time() if now is None else now)
    claims = LoginClaims(
        iss=issuer, aud=_audience(issuer), sub=customer_ref, iat=at, exp=at + seconds,
        jti=secrets.token_urlsafe(12),
    )
    key = keys.signing_key()
    alg = str(key.alg)
    header = {"alg": alg, "typ": _TYP, "kid": str(key.kid)}
    return jws.serialize_compact(header, msgspec.json.encode(claims), key, algorithms=[alg])


def read(
    keys: KeyStore,
    value: str | None,
    *,
    issuer: str,
    signed_out: Callable[[LoginClaims], bool],
    clock: Callable[[], float] = time.time,
) -> str | None:
    """The customer number of a valid, unexpired login cookie ``value`` that ``signed_out`` (e.g.
    :meth:`SignOuts.signed_out`; required, so no caller forgets sign-outs) does not say was signed out;
    None for anything else."""
    claims = verify(keys, value, issuer=issuer, clock=clock)
    if claims is None or signed_out(claims):
        return None
    return claims.sub


def verify(
    keys: KeyStore, value: str | None, *, issuer: str, clock: Callable[[], float] = time.time
) -> LoginClaims | None:
    """The claims of a login cookie ``value`` signed with ``keys`` for ``issuer`` and unexpired; None
    for anything else (absent, too long, forged, another issuer's, expired)."""
    if not value or len(value) > _MAX_BYTES:
        return None
    try:
        obj = jws.extract_compact(value.encode("ascii"))
        header = obj.headers()
        kid = header.get("kid")
        if header.get("typ") != _TYP or not isinstance(kid, str):
            return None
        key = keys.verification_key(kid)
        if key is None or header.get("alg") != key.alg:
            return None
        if not jws.validate_compact(obj, key, algorithms=[str(key.alg)]):
            return None
        claims = msgspec.json.decode(obj.payload or b"", type=LoginClaims)
    except (JoseError, ValueError, TypeError, UnicodeEncodeError, msgspec.DecodeError):
        return None
    if claims.iss != issuer or claims.aud != _audience(issuer) or claims.exp <= clock():
        return None
    return claims


class SignOuts:
    """Login cookies signed out before they expire, kept in the shared used-ids table under
    ``login:<issuer>`` until their ``exp``, so every worker refuses them."""

    def __init__(self, db: Database, issuer: str) -> None:
        self._ids = AssertionIds(db)
        self._slot = f"login:{issuer}"

    def sign_out(self, claims: LoginClaims) -> None:
        """Record the cookie of ``claims`` as signed out (again is no error)."""
        self._ids.first_use(self._slot, claims.jti, datetime.fromtimestamp(claims.exp, UTC))

    def signed_out(self, claims: LoginClaims) -> bool:
        """Whether the cookie of ``claims`` was signed out."""
        return self._ids.recorded(self._slot, claims.jti)
