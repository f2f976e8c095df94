"""The bank's identity provider as the authorization server trusts it: its keys and used assertions.

The IdP signs a short-lived JWT (RFC 7523) naming the customer who signed in to the app (``sub``, the
bank's customer number). Fulcrum holds no password: it checks the signature with the IdP's public
keys, the issuer, audience and lifetime, and refuses an assertion id (``jti``) seen before. The
checks themselves are authlib's ``JWTBearerGrant``'s (``fulcrum_core.oauth.jwt_bearer``); this module
keeps what they read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey

from fulcrum_core.data.db import Database
from fulcrum_core.oauth.used_ids import AssertionIds
from fulcrum_core.settings import OAuthIdp, is_loopback_url

__all__ = ["ASSERTION_ALGORITHMS", "MAX_SUBJECT_LENGTH", "IdentityProvider", "IdpKeyError", "load_pem_keys"]

log = logging.getLogger("fulcrum.oauth")

ASSERTION_ALGORITHMS: Final = (
    "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "Ed25519", "EdDSA",
)
"""What a signed assertion (a partner's client assertion, the IdP's) may be signed with: the asymmetric
algorithms of the keys a manifest or the IdP may have (EC P-256/384/521, RSA, Ed25519, which RFC 9864
names ``Ed25519`` and manifests ``EdDSA``); never HMAC or ``none``. Each key verifies only its own kind."""

MAX_SUBJECT_LENGTH: Final = 64
"""The longest customer number a token can carry (the ``subject`` columns of codes and refresh tokens)."""
_FETCH_TIMEOUT: Final = 5.0


class IdpKeyError(RuntimeError):
    """The configured IdP keys cannot be read: the operator's settings, not the client, are wrong."""


def load_pem_keys(pems: tuple[str, ...]) -> list[Any]:
    """The public keys in ``pems`` (RSA, EC or Ed25519 PEM texts), each given its thumbprint as key id."""
    keys: list[Any] = []
    for number, pem in enumerate(pems, start=1):
        for kind in (RSAKey, ECKey, OKPKey):
            try:
                key = kind.import_key(pem)
            except (ValueError, TypeError, JoseError):
                continue
            key.ensure_kid()
            keys.append(key)
            break
        else:
            raise IdpKeyError(f"oauth_idp.public_keys[{number}] is no RSA, EC or Ed25519 public key in PEM")
    return keys


class IdentityProvider:
    """The IdP's settings, its public keys (re-read from ``jwks`` as they change) and used assertion ids."""

    def __init__(
        self,
        config: OAuthIdp,
        *,
        issuer: str,
        db: Database,
        customer_exists: Callable[[str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if config.issuer is None:
            raise ValueError("the identity provider has no issuer (oauth_idp.issuer)")
        self.issuer: str = config.issuer
        self.audiences = list(config.audiences) or [issuer + "/oauth/token", issuer]
        self.clients = frozenset(config.clients)
        self.max_assertion_seconds = config.max_assertion_seconds
        self.login_seconds = config.login_seconds
        self.customer_exists = customer_exists
        self.assertion_ids = AssertionIds(db)
        self._config = config
        self._clock = clock
        self._pem_keys: list[Any] | None = None  # read on first use: a bad key breaks only the IdP's paths
        self._jwks: list[Any] = []
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def key_set(self, kid: str | None = None) -> KeySet:
        """The IdP's public keys; the JWKS is read again when stale or when it lacks ``kid``.

        One thread reads a stale JWKS while the others go on with the keys read before, so a slow JWKS
        endpoint (up to its 5 s timeout) holds up no sign-in; only a first read, or a ``kid`` none of the
        keys has (the IdP rotated), makes a caller wait for it. Raises ``IdpKeyError`` when the
        configured keys cannot be read (and none were before).
        """
        if self._pem_keys is None:
            with self._lock:
                if self._pem_keys is None:
                    self._pem_keys = load_pem_keys(self._config.public_keys)
        if (where := self._config.jwks) is not None:
            if self._missing(kid) or self._read_at is None:
                with self._lock:
                    self._refresh(where, kid)
            elif self._stale() and self._lock.acquire(blocking=False):
                try:
                    self._refresh(where, kid)
                finally:
                    self._lock.release()
        return KeySet([*self._jwks, *self._pem_keys])

    def _stale(self) -> bool:
        return self._read_at is None or self._clock() - self._read_at >= self._config.jwks_cache_seconds

    def _missing(self, kid: str | None) -> bool:
        """``kid`` is named and no key has it (read again for it at most once a second)."""
        if kid is None or any(k.kid == kid for k in (*self._jwks, *(self._pem_keys or ()))):
            return False
        return self._read_at is not None and self._clock() - self._read_at >= 1

    def _refresh(self, where: str, kid: str | None) -> None:
        """(holding the lock) Read the JWKS if it is still due: another thread may have read it meanwhile."""
        if self._stale() or self._missing(kid):
            self._jwks = self._read_jwks(where)
            self._read_at = self._clock()

    def _read_jwks(self, where: str) -> list[Any]:
        """The keys of the JWK Set at ``where`` (a file, or a loopback URL); the last ones on failure."""
        try:
            if where.startswith(("http://", "https://")):
                if not is_loopback_url(where):  # the settings pattern already says so; never leave the host
                    raise IdpKeyError(f"oauth_idp.jwks {where!r} is not on the loopback interface")
                response = httpx.get(where, timeout=_FETCH_TIMEOUT, follow_redirects=False)
                response.raise_for_status()
                body = response.json()
            else:
                import json

                body = json.loads(Path(where).read_text(encoding="utf-8"))
            keys = list(KeySet.import_key_set(body).keys)
        except (OSError, ValueError, TypeError, KeyError, JoseError, httpx.HTTPError) as exc:
            if self._jwks:
                log.warning("cannot read the IdP's JWKS at %s (%s); keeping the keys read before", where, exc)
                return self._jwks
            raise IdpKeyError(f"cannot read the IdP's JWKS at {where}: {exc}") from exc
        return keys
