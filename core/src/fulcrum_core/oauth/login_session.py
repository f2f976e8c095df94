"""The consent page's customer login: a short-lived cookie set from an identity-provider assertion.

The app's webview posts the bank IdP's assertion to ``/oauth/login``; once it verifies, the browser
gets an ``HttpOnly`` cookie holding a JWT that this host signs with its token key set, for
``oauth_idp.login_seconds``. Its own ``typ`` and audience keep it from passing as an access token
(and an access token from passing as it), and every worker verifies it with the shared keys.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Final

import msgspec
from joserfc import jws
from joserfc.errors import JoseError

from fulcrum_core.auth.keys import KeyStore

__all__ = ["LOGIN_PATH", "LoginClaims", "cookie_name", "read", "sign"]

LOGIN_PATH: Final = "/oauth/login"
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
    keys: KeyStore, value: str | None, *, issuer: str, clock: Callable[[], float] = time.time
) -> str | None:
    """The customer number of a valid, unexpired login cookie ``value``; None for anything else."""
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
    return claims.sub
